-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Rule set and model versions in force over the range, from the flagged lines: first and last hour seen (the key path's, UTC) and lines.
SELECT
    rules_version,
    COALESCE(model_version, '(none)') AS model_version,
    MIN(dt || 'T' || hour) AS first_seen,
    MAX(dt || 'T' || hour) AS last_seen,
    COUNT(*) AS lines
FROM flagged
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY rules_version, COALESCE(model_version, '(none)')
ORDER BY first_seen, rules_version, model_version
