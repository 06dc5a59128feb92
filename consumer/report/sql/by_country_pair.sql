-- parameters: :start_dt, :end_dt (YYYY-MM-DD), :alert_rank (1 low, 2 medium, 3 high). Flagged transactions by origin country (the account's or card's) and destination country (the merchant's or receiver's), upper-cased.
SELECT
    COALESCE(UPPER("transaction".origin_country), '(none)') AS origin_country,
    COALESCE(UPPER("transaction".destination_country), '(none)') AS destination_country,
    COUNT(*) AS flagged,
    SUM(CAST("transaction".amount AS DOUBLE)) AS value,
    SUM(CASE WHEN CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END >= :alert_rank THEN 1 ELSE 0 END) AS alerts
FROM flagged
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY COALESCE(UPPER("transaction".origin_country), '(none)'), COALESCE(UPPER("transaction".destination_country), '(none)')
ORDER BY flagged DESC, origin_country, destination_country
