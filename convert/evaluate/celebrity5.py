"""The seed tutorial as a regression test: 5-celebrity faces, FaceNet embeddings, linear SVM and 1-NN.

Train on `train/<person>/*`, score on `val/<person>/*`. The classic tutorial reports 100% with the
MTCNN crop + FaceNet + linear SVM; anything lower means the detection/crop/embedding chain broke.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.convert.evaluate.embeddings import embed_files
from facegate.convert.evaluate.faces import FaceFinder
from facegate.convert.evaluate.report import pyplot, write_outputs
from facegate.edge.errors import DatasetError
from facegate.edge.face.embed import Embedder
from facegate.edge.images import list_images


def labelled_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Images and labels of a <person>/<image> folder."""
    if not folder.is_dir():
        raise DatasetError(f"folder not found: {folder}")
    paths, labels = [], []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        for img in list_images(person):
            paths.append(img)
            labels.append(person.name)
    if not paths:
        raise DatasetError(f"no images in person folders under {folder}")
    return paths, labels


def evaluate_celebrity5(root: Path, embedder: Embedder, finder: FaceFinder, out_dir: Path, command: str,
                        use_cache: bool = True, progress: bool = True) -> dict:
    from sklearn.metrics import confusion_matrix
    from sklearn.svm import SVC

    train_paths, train_labels = labelled_images(root / "train")
    val_paths, val_labels = labelled_images(root / "val")
    run = embed_files(train_paths + val_paths, embedder, finder, use_cache=use_cache, progress=progress)
    xtr = np.stack([run.vectors[p] for p in train_paths])
    xva = np.stack([run.vectors[p] for p in val_paths])
    ytr, yva = np.array(train_labels), np.array(val_labels)
    svm = SVC(kernel="linear", C=1.0).fit(xtr, ytr)
    svm_pred = svm.predict(xva)
    nn_pred = ytr[np.argmax(xva @ xtr.T, axis=1)]
    classes = sorted(set(train_labels))
    cm = confusion_matrix(yva, svm_pred, labels=classes)
    result = {
        "task": "closed-set identification", "dataset": "5-celebrity-faces", "model": embedder.name,
        "command": command, "train_images": len(train_paths), "val_images": len(val_paths),
        "svm_accuracy": float(np.mean(svm_pred == yva)), "nn1_accuracy": float(np.mean(nn_pred == yva)),
        "train_svm_accuracy": float(np.mean(svm.predict(xtr) == ytr)),
        "images_without_face": len(run.no_face), "classes": classes, "confusion_svm": cm.tolist(),
        "errors_svm": [{"image": str(p), "true": t, "predicted": s}
                       for p, t, s in zip(val_paths, yva, svm_pred) if t != s],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"celebrity5_{Path(embedder.name).stem}"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center")
    ax.set(xlabel="predicted", ylabel="true", title=f"5-celebrity val, linear SVM: {100 * result['svm_accuracy']:.1f}%")
    fig.tight_layout()
    fig.savefig(out_dir / f"{stem}_confusion.png", dpi=110)
    plt.close(fig)
    result["plots"] = [f"{stem}_confusion.png"]
    md = "\n".join([f"# 5-celebrity faces: {embedder.name}", "", f"Command: `{command}`", "",
                    "| classifier | val accuracy |", "|---|---|",
                    f"| linear SVM | {100 * result['svm_accuracy']:.1f}% |",
                    f"| 1-NN (cosine) | {100 * result['nn1_accuracy']:.1f}% |", "",
                    f"{len(train_paths)} train / {len(val_paths)} val images; "
                    f"{len(run.no_face)} without a detected face.", "",
                    f"![confusion]({stem}_confusion.png)", ""])
    write_outputs(out_dir, stem, result, md)
    return result
