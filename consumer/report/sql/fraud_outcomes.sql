-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Judged transactions (the decisions trail) against their labels (the latest verdict per transaction, fraud winning a tie): labelled, frauds, caught (flagged) and missed, and their values (NULL or 0 for lines written before the decision line carried the amount): the value of the missed frauds is the fraud loss.
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
    COUNT(*) AS judged,
    SUM(CASE WHEN l.transaction_id IS NOT NULL THEN 1 ELSE 0 END) AS labelled,
    SUM(CASE WHEN l.is_fraud THEN 1 ELSE 0 END) AS frauds,
    SUM(CASE WHEN l.is_fraud AND d.flagged THEN 1 ELSE 0 END) AS caught,
    SUM(CASE WHEN l.is_fraud AND NOT d.flagged THEN 1 ELSE 0 END) AS missed,
    SUM(CASE WHEN l.is_fraud = false AND d.flagged THEN 1 ELSE 0 END) AS false_alarms,
    SUM(CASE WHEN l.is_fraud THEN CAST(d.amount AS DOUBLE) ELSE 0 END) AS frauds_value,
    SUM(CASE WHEN l.is_fraud AND d.flagged THEN CAST(d.amount AS DOUBLE) ELSE 0 END) AS caught_value,
    SUM(CASE WHEN l.is_fraud AND NOT d.flagged THEN CAST(d.amount AS DOUBLE) ELSE 0 END) AS missed_value
FROM decisions d
LEFT JOIN label l ON l.transaction_id = d.transaction_id
WHERE d.dt BETWEEN :start_dt AND :end_dt
