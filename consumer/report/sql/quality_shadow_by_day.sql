-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Per shadow rule and day, over labelled judged transactions: true/false positives and negatives (at most 32 reasons a shadow line are read).
WITH label AS (
    SELECT transaction_id, is_fraud
    FROM (
        SELECT
            transaction_id,
            is_fraud,
            ROW_NUMBER() OVER (
                PARTITION BY transaction_id
                ORDER BY labelled_at DESC, CASE WHEN is_fraud THEN 1 ELSE 0 END DESC
            ) AS rn
        FROM labels
    ) ranked
    WHERE rn = 1
),
judged AS (
    SELECT d.dt, d.transaction_id, l.is_fraud
    FROM decisions d
    JOIN label l ON l.transaction_id = d.transaction_id
    WHERE d.dt BETWEEN :start_dt AND :end_dt
),
shadow_fired AS (
    SELECT DISTINCT s.transaction_id, try(s.reasons[p.i].rule) AS rule
    FROM shadow s
    CROSS JOIN UNNEST(ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32]) AS p(i)
    WHERE s.dt BETWEEN :start_dt AND :end_dt AND try(s.reasons[p.i].rule) IS NOT NULL
),
shadow_rules AS (
    SELECT DISTINCT rule FROM shadow_fired
)
SELECT
    j.dt,
    r.rule,
    SUM(CASE WHEN sf.transaction_id IS NOT NULL AND j.is_fraud THEN 1 ELSE 0 END) AS tp,
    SUM(CASE WHEN sf.transaction_id IS NOT NULL AND NOT j.is_fraud THEN 1 ELSE 0 END) AS fp,
    SUM(CASE WHEN sf.transaction_id IS NULL AND j.is_fraud THEN 1 ELSE 0 END) AS fn,
    SUM(CASE WHEN sf.transaction_id IS NULL AND NOT j.is_fraud THEN 1 ELSE 0 END) AS tn
FROM judged j
CROSS JOIN shadow_rules r
LEFT JOIN shadow_fired sf ON sf.transaction_id = j.transaction_id AND sf.rule = r.rule
GROUP BY j.dt, r.rule
ORDER BY r.rule, j.dt
