-- parameters: :start_dt, :end_dt (YYYY-MM-DD), :alert_rank (1 low, 2 medium, 3 high). Per day: transactions judged (the decisions trail), flagged, alerts.
SELECT
    dt,
    COUNT(*) AS judged,
    SUM(CASE WHEN flagged THEN 1 ELSE 0 END) AS flagged,
    SUM(CASE WHEN CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END >= :alert_rank THEN 1 ELSE 0 END) AS alerts
FROM decisions
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY dt
ORDER BY dt
