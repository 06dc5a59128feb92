-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Dead letters by reason: the error's text before its first colon.
SELECT
    split_part(error, ':', 1) AS reason,
    COUNT(*) AS dead_letters
FROM dead_letters
WHERE dt BETWEEN :start_dt AND :end_dt
GROUP BY split_part(error, ':', 1)
ORDER BY dead_letters DESC, reason
