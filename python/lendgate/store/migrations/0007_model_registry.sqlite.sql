-- The model registry in the store (python/lendgate/models/store_registry.py): each version
-- of `models` may carry its explainer arrays (explain.npz bytes; the ONNX bytes are already
-- `artifact`, the card is `metadata`), and each model name has one serving state.
ALTER TABLE models ADD COLUMN explainer BLOB;

-- Which versions of a name serve: the champion (NULL before the first promote), the
-- shadows (JSON array of versions, scored and logged only) and the earlier champions
-- (JSON array, most recent last: what a rollback returns to).
CREATE TABLE model_serving (
    name          TEXT PRIMARY KEY,
    champion      INTEGER,
    shadows       TEXT NOT NULL,
    history       TEXT NOT NULL,
    updated_at_us INTEGER NOT NULL
);
