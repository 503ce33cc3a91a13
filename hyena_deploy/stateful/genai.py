"""``genai_config.json`` for ONNX Runtime GenAI, for models whose every layer is one FIR cache + one modal state.

ONNX Runtime GenAI (0.18) finds recurrent states by name (``past_key_values.%d.conv_state`` /
``.recurrent_state``, outputs ``present.%d.*``), zero-initialises them, runs the prompt in one call
and then one token per call: exactly ``decode.onnx``'s contract. It reads one state shape for all
layers, so only models whose layers all carry the same pair qualify (StripedHyena with Hyena
layers only, or a distilled model); history, attention and mixed Evo 2 layouts do not.

GenAI reads ``pad_token_id`` as right padding (the first logits come from the prompt's last token that
is not the pad id) and, with no ``eos_token_id``, ends rows at the pad id; it needs the end id inside
the vocabulary, not the pad id. So a model without a pad token gets ``vocab_size`` (no real token: a
prompt is read whole, and a row padded with it fails in the embedding instead of decoding padding),
and one without an end token gets the last id, ``vocab_size - 1``, as GenAI's end: GenAI stops there,
where ``Generator`` goes on unless given it as a stop token.
"""

from __future__ import annotations

from hyena_deploy.stateful.layout import DECODE_FILE, INPUT_IDS, LOGITS, StateSpec

GENAI_FILE = "genai_config.json"
CONV, RECURRENT = "conv_state", "recurrent_state"
MODAL_KINDS = {"modal", "modal_complex"}


def genai_config(specs: list[StateSpec], vocab_size: int, max_context: int, special_tokens: dict) -> dict | None:
    """The config, or None when the state layout is not one GenAI can drive."""
    layers = sorted({s.layer for s in specs if s.layer is not None})
    if any(s.layer is None for s in specs) or not layers:
        return None
    by_layer = {layer: {s.name: s for s in specs if s.layer == layer} for layer in layers}
    first = by_layer[layers[0]]
    for states in by_layer.values():
        if set(states) != {CONV, RECURRENT} or states[CONV].kind != "fir" or states[RECURRENT].kind not in MODAL_KINDS:
            return None
        if states[CONV].shape != first[CONV].shape or states[RECURRENT].shape != first[RECURRENT].shape:
            return None
    hidden = first[RECURRENT].shape[0]
    bos, eos, pad = (special_tokens.get(name) for name in ("bos", "eos", "pad"))
    return {
        "model": {
            "type": "decoder", "vocab_size": vocab_size, "context_length": max_context,
            "bos_token_id": 0 if bos is None else bos, "pad_token_id": vocab_size if pad is None else pad,
            "eos_token_id": [vocab_size - 1 if eos is None else eos],
            "decoder": {"filename": DECODE_FILE, "hidden_size": hidden, "head_size": hidden, "num_attention_heads": 1,
                        "num_key_value_heads": 1, "num_hidden_layers": len(layers),
                        "inputs": {"input_ids": INPUT_IDS}, "outputs": {"logits": LOGITS}}},
        "search": {"max_length": max_context, "do_sample": False, "num_beams": 1},
    }
