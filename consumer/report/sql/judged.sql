-- parameters: :start_dt, :end_dt (YYYY-MM-DD), :alert_rank (1 low, 2 medium, 3 high). Transactions judged (the decisions trail), their value (sum of amounts, all currencies), flagged and alerts; with_amount counts the lines that carry the amount (a line written before the decision line did has none).
SELECT
    COUNT(*) AS judged,
    SUM(CAST(amount AS DOUBLE)) AS value,
    COUNT(amount) AS with_amount,
    SUM(CASE WHEN flagged THEN 1 ELSE 0 END) AS flagged,
    SUM(CASE WHEN CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END >= :alert_rank THEN 1 ELSE 0 END) AS alerts
FROM decisions
WHERE dt BETWEEN :start_dt AND :end_dt
