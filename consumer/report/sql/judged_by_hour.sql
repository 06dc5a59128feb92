-- parameters: :start_dt, :end_dt (YYYY-MM-DD), :alert_rank (1 low, 2 medium, 3 high). Judged transactions (the decisions trail) by hour of day (UTC, the arrival hour of the key path), over the whole range: count and value judged, flagged, alerts, labelled frauds (the latest verdict per transaction, fraud winning a tie), their value and the value of those not flagged; values are NULL or 0 for lines written before the decision line carried the amount.
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
)
SELECT
    d.hour AS hour,
    COUNT(*) AS judged,
    SUM(CAST(d.amount AS DOUBLE)) AS judged_value,
    SUM(CASE WHEN d.flagged THEN 1 ELSE 0 END) AS flagged,
    SUM(CASE WHEN d.flagged THEN CAST(d.amount AS DOUBLE) ELSE 0 END) AS flagged_value,
    SUM(CASE WHEN CASE d.severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END >= :alert_rank THEN 1 ELSE 0 END) AS alerts,
    SUM(CASE WHEN l.is_fraud THEN 1 ELSE 0 END) AS frauds,
    SUM(CASE WHEN l.is_fraud THEN CAST(d.amount AS DOUBLE) ELSE 0 END) AS fraud_value,
    SUM(CASE WHEN l.is_fraud AND NOT d.flagged THEN CAST(d.amount AS DOUBLE) ELSE 0 END) AS missed_value
FROM decisions d
LEFT JOIN label l ON l.transaction_id = d.transaction_id
WHERE d.dt BETWEEN :start_dt AND :end_dt
GROUP BY d.hour
ORDER BY hour
