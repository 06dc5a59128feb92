-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Flagged transactions by hour of day (UTC, the arrival hour of the key path), over the whole range.
SELECT
    hour,
    COUNT(*) AS flagged,
    SUM(CAST("transaction".amount AS DOUBLE)) AS value
FROM flagged
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY hour
ORDER BY hour
