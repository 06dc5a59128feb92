-- parameters: :start_dt, :end_dt (YYYY-MM-DD). Model scores per day in ten bins of width 10 (bin 0: [0, 10), ..., bin 9: [90, 100]), from the decisions trail.
SELECT
    dt,
    LEAST(CAST(FLOOR(model_score / 10) AS INTEGER), 9) AS bin,
    COUNT(*) AS scored
FROM decisions
WHERE dt BETWEEN :start_dt AND :end_dt AND model_score IS NOT NULL
GROUP BY dt, LEAST(CAST(FLOOR(model_score / 10) AS INTEGER), 9)
ORDER BY dt, bin
