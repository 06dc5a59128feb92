"""The model score: features the stream's history gives, a LightGBM model trained offline
(`fraudstream train`), and a vectorised batch scorer that explains each score.

Import `consumer.model.scorer` / `consumer.model.train` only when a model is configured:
they need the `model` extra (LightGBM, numpy); `consumer.model.features` does not.
"""
