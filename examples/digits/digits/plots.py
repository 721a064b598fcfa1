"""Training-curve figure logged with each run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # pods and CI have no display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def training_curve(history: dict[str, list[float]]) -> Figure:
    epochs = range(1, len(history["train_loss"]) + 1)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, history["train_loss"], label="train")
    loss_axis.plot(epochs, history["val_loss"], label="validation")
    loss_axis.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    loss_axis.legend()
    accuracy_axis.plot(epochs, history["val_accuracy"], color="tab:green")
    accuracy_axis.set(title="validation accuracy", xlabel="epoch", ylim=(0, 1))
    figure.tight_layout()
    plt.close(figure)  # mlflow.log_figure renders it; keep pyplot's registry empty
    return figure
