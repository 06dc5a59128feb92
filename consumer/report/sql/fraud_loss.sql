-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Flagged transactions against their labels: labelled frauds caught and their value (the fraud loss stopped), from the flagged lines alone: the report's figure when the decisions trail is off or its lines carry no amount (fraud_outcomes has the missed frauds' value).
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
    SUM(CASE WHEN l.transaction_id IS NOT NULL THEN 1 ELSE 0 END) AS labelled,
    SUM(CASE WHEN l.is_fraud THEN 1 ELSE 0 END) AS caught,
    SUM(CASE WHEN l.is_fraud THEN CAST(f."transaction".amount AS DOUBLE) ELSE 0 END) AS caught_value,
    SUM(CASE WHEN l.is_fraud = false THEN 1 ELSE 0 END) AS false_alarms
FROM flagged f
LEFT JOIN label l ON l.transaction_id = f.transaction_id
WHERE f.dt BETWEEN :start_dt AND :end_dt
