"""``archzoo forecast RUN_DIR [--plot out.png]``: one forecast of a forecasting run, printed and drawn
(history, truth and forecast), on the original scale of the series."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forecast", help="forecast with a trained forecasting run and plot it",
                       description="e.g. archzoo forecast RUN_DIR --plot out.png [--window -1] [--channel OT]; "
                                   "--future forecasts past the end of the data.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--plot", type=Path, help="write a PNG of history, truth and forecast here")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="the split the window is from")
    p.add_argument("--window", type=int, default=-1, help="which window of the split (default -1: the last)")
    p.add_argument("--future", action="store_true", help="forecast the steps after the last row of the data")
    p.add_argument("--channel", help="the variable to print and plot (default: the last column, e.g. OT)")
    p.add_argument("--which", choices=["best", "last"], default="best", help="best validation or last weights")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from archzoo.errors import UserError
    from archzoo.fileio import ensure_writable_dir
    from archzoo.tasks import TASKS
    from archzoo.tasks.forecasting import Forecasting
    from archzoo.training.checkpoint import load_model
    from archzoo.training.distributed import resolve_device

    model, cfg = load_model(args.run_dir, args.which)
    if cfg.task != "forecasting":
        raise UserError(f"{args.run_dir} is a {cfg.task} run; `archzoo forecast` needs a forecasting run")
    task = TASKS.get(cfg.task)(cfg.data, args.data_dir)
    assert isinstance(task, Forecasting)
    model = model.to(resolve_device(args.device))
    k = task.channel_index(args.channel)
    f = task.forecast(model, args.split, args.window, args.future)
    name = f["columns"][k]
    where = "after the end of the data" if args.future else f"{args.split} window {args.window}"
    print(f"{cfg.model.name} on {cfg.data.dataset}, {name}: {cfg.data.horizon} steps from {f['history_times'][-1]} "
          f"({where})")
    truth = f["truth"]
    times = f["forecast_times"] or [f"+{h + 1}" for h in range(cfg.data.horizon)]
    print("time\tforecast" + ("\ttruth" if truth is not None else ""))
    for h, time in enumerate(times):
        print(f"{time}\t{f['forecast'][h, k]:.4f}" + (f"\t{truth[h, k]:.4f}" if truth is not None else ""))
    if truth is not None:
        error = f["forecast"][:, k] - truth[:, k]
        print(f"{name}: RMSE {np.sqrt(np.mean(error ** 2)):.4f}, MAE {np.mean(np.abs(error)):.4f} (original scale)")
    if args.plot:
        if args.plot.is_dir():
            raise UserError(f"--plot {args.plot} is a folder; give a file name such as {args.plot / 'forecast.png'}")
        ensure_writable_dir(args.plot.parent, "choose another --plot path")
        task.plot(model, args.plot, args.split, args.window, args.future, args.channel,
                  title=f"{cfg.model.name}: {cfg.data.dataset} {name}, look-back {cfg.data.seq_len}, "
                        f"horizon {cfg.data.horizon} ({where})")
        print(f"wrote {args.plot}")
    return 0
