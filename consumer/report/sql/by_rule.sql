-- parameters: :start_dt, :end_dt (YYYY-MM-DD), :alert_rank (1 low, 2 medium, 3 high). Flagged transactions by rule (a transaction counts once for each of its reasons; at most 32 reasons a line are read).
SELECT
    rule,
    COUNT(*) AS flagged,
    SUM(amount) AS value,
    SUM(CASE WHEN rank >= :alert_rank THEN 1 ELSE 0 END) AS alerts
FROM (
    SELECT
        try(f.reasons[p.i].rule) AS rule,
        CAST(f."transaction".amount AS DOUBLE) AS amount,
        CASE f.severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END AS rank
    FROM flagged f
    CROSS JOIN UNNEST(ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32]) AS p(i)
    WHERE f.dt BETWEEN :start_dt AND :end_dt
) fired
WHERE rule IS NOT NULL
GROUP BY rule
ORDER BY flagged DESC, rule
