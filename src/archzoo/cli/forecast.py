"""``archzoo forecast RUN_DIR [--plot out.png]``: one forecast of a forecasting run, printed and drawn
(history, truth and forecast), on the original scale of the series."""

from __future__ import annotations

import argparse

from archzoo.cli.common import add_data_dir, add_run, output_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forecast", help="forecast with a trained forecasting run and plot it",
                       description="e.g. archzoo forecast RUN_DIR --plot out.png [--window -1] [--channel OT]; "
                                   "--future forecasts past the end of the data.")
    add_run(p)
    p.add_argument("--plot", type=output_file("forecast.png"), help="write a PNG of history, truth and forecast here")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="the split the window is from")
    p.add_argument("--window", type=int, default=-1, help="which window of the split (default -1: the last)")
    p.add_argument("--future", action="store_true", help="forecast the steps after the last row of the data")
    p.add_argument("--horizon", type=int, help="steps to forecast (default: the model's; longer ones feed forecasts back)")
    p.add_argument("--channel", help="the variable to print and plot (default: the last column, e.g. OT)")
    add_data_dir(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run, print_notes

    loaded = load_run(args)
    f = loaded.forecast(horizon=args.horizon, split=args.split, window=args.window, future=args.future)
    print_notes(f, loaded)
    cfg = loaded.config
    name = f.columns[f.channel_index(args.channel)]
    where = "after the end of the data" if args.future else f"{args.split} window {args.window}"
    print(f"{cfg.model.name} on {cfg.data.dataset}, {name}: {len(f.forecast)} steps from {f.history_times[-1]} "
          f"({where})")
    print("\n".join(f.lines(args.channel)))
    if args.plot:
        f.plot(args.plot, args.channel, title=f"{cfg.model.name}: {cfg.data.dataset} {name}, look-back "
                                             f"{cfg.data.seq_len}, horizon {len(f.forecast)} ({where})")
        print(f"wrote {args.plot}")
    return 0
