"""USAGE.md beside every exported model: what an Android / iOS / Python integrator needs to feed
the model and read its output, generated from the card so it can never disagree with it."""
from __future__ import annotations

from pathlib import Path

from facegate.edge.cards import ModelCard
from facegate.edge.face.align import template

NORMALISATION_TEXT = {
    "prewhiten": "per image: `x = (pixel - mean(image)) / max(std(image), 1/sqrt(H*W*3))` over all RGB values",
    "mean127.5_div128": "`x = (pixel - 127.5) / 128` (RGB values 0..255 to about -1..1)",
    "div255": "`x = pixel / 255`",
    "none": "raw 0..255 values as float32",
}


def usage_markdown(card: ModelCard) -> str:
    spec = card.input
    size = spec.size
    if spec.alignment.startswith("similarity"):
        pts = "; ".join(f"({x:.2f}, {y:.2f})" for x, y in template(size))
        align = (f"5-point similarity transform (rotation, uniform scale, translation; least squares) from the "
                 f"detector's landmarks — left eye, right eye, nose, left mouth corner, right mouth corner as seen "
                 f"in the image — onto these {size}x{size} positions: {pts}.")
    elif spec.alignment == "margin32":
        align = (f"take the face detector's box, grow it by 16 px on every side (in original-image pixels), clip to "
                 f"the image, and resize the crop to {size}x{size} (no rotation).")
    else:
        align = f"resize the detected face box to {size}x{size}."
    rows = "\n".join(f"| {far} | {t:.4f} |" for far, t in sorted(card.thresholds.items(), key=lambda kv: -float(kv[0])))
    thresholds = ("| target false accept rate | accept if cosine >= |\n|---|---|\n" + rows) if rows else \
        "No thresholds calibrated yet: run `facegate calibrate thresholds --model THIS_FILE`."
    dim = card.embedding_dim or "?"
    return f"""# {card.file} — how to use it

{card.name} ({card.format}, {card.quantization}); checksum sha256 `{card.sha256}`.
Everything here is generated from `{card.file}.json` (the model card).

## Input
* One tensor `[N, {size}, {size}, 3]`, layout {spec.layout}, colour order **{spec.color}**, float32
  (int8 models with integer I/O: quantise with the scale and zero point stored in the file).
* Face crop: {align}
* Normalisation: {NORMALISATION_TEXT[spec.normalisation]}.

## Output
* `[N, {dim}]` embedding. **L2-normalise it** (divide by its length); compare two faces with the
  cosine similarity (dot product of the normalised vectors): higher is more alike.

## Decision thresholds
{thresholds}

Between a stricter and a looser threshold a door should ask the person to try again rather than
reject outright.

## Code
Python on a board (no TensorFlow), with facegate:

```python
from facegate.edge import Pipeline
pipe = Pipeline.from_config(embedder="{card.file}")
vector = pipe.embed(image_rgb).vector          # detect, align, normalise, embed, L2-normalise
```

Android (LiteRT / TensorFlow Lite interpreter), in outline:

```kotlin
val interpreter = Interpreter(loadModelFile("{card.file}"))
val input = Array(1) {{ Array({size}) {{ Array({size}) {{ FloatArray(3) }} }} }}   // aligned RGB crop, normalised as above
val output = Array(1) {{ FloatArray({dim}) }}
interpreter.run(input, output)                       // then L2-normalise output[0]
```

iOS (Core ML `.mlpackage`): input `image` MLMultiArray `[1, {size}, {size}, 3]` float32 prepared as above;
L2-normalise the output array before comparing.
"""


def write_usage(card: ModelCard, model_path: Path) -> Path:
    path = model_path.with_name(model_path.name + ".USAGE.md")
    path.write_text(usage_markdown(card))
    return path
