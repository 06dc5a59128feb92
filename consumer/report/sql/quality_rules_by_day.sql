-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Per live rule (model_score included: the model at its threshold) and day, over labelled judged transactions: true/false positives and negatives.
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
    SELECT d.dt, d.rules, l.is_fraud
    FROM decisions d
    JOIN label l ON l.transaction_id = d.transaction_id
    WHERE d.dt BETWEEN :start_dt AND :end_dt
),
fired AS (
    SELECT DISTINCT r.rule
    FROM decisions d
    CROSS JOIN UNNEST(d.rules) AS r(rule)
    WHERE d.dt BETWEEN :start_dt AND :end_dt
)
SELECT
    j.dt,
    f.rule,
    SUM(CASE WHEN contains(j.rules, f.rule) AND j.is_fraud THEN 1 ELSE 0 END) AS tp,
    SUM(CASE WHEN contains(j.rules, f.rule) AND NOT j.is_fraud THEN 1 ELSE 0 END) AS fp,
    SUM(CASE WHEN NOT contains(j.rules, f.rule) AND j.is_fraud THEN 1 ELSE 0 END) AS fn,
    SUM(CASE WHEN NOT contains(j.rules, f.rule) AND NOT j.is_fraud THEN 1 ELSE 0 END) AS tn
FROM judged j
CROSS JOIN fired f
GROUP BY j.dt, f.rule
ORDER BY f.rule, j.dt
