-- parameters: :start_dt, :end_dt (YYYY-MM-DD), :alert_rank (1 low, 2 medium, 3 high). Flagged transactions by severity: count, value, alerts.
SELECT
    severity AS severity,
    COUNT(*) AS flagged,
    SUM(CAST("transaction".amount AS DOUBLE)) AS value,
    SUM(CASE WHEN CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END >= :alert_rank THEN 1 ELSE 0 END) AS alerts
FROM flagged
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY severity
ORDER BY flagged DESC, severity
