-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Transactions judged (the decisions trail) by hour of day (UTC, the arrival hour of the key path), over the whole range.
SELECT
    hour,
    COUNT(*) AS judged,
    SUM(CASE WHEN flagged THEN 1 ELSE 0 END) AS flagged
FROM decisions
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY hour
ORDER BY hour
