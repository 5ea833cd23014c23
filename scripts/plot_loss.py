#!/usr/bin/python3
"""Plots a training loss curve (the .loss.jsonl that `diffsde train` writes beside the
model) to a PNG with gnuplot: the logged loss per step and its running mean.

    scripts/plot_loss.py MODEL.loss.jsonl OUT.png [--title TEXT]
"""
import argparse
import json
import subprocess


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loss")
    parser.add_argument("out")
    parser.add_argument("--title", default="training loss")
    parser.add_argument("--window", type=int, default=5, help="points in the running mean")
    args = parser.parse_args()
    steps, losses = [], []
    with open(args.loss) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                steps.append(int(row["step"]))
                losses.append(float(row["loss"]))
            except (ValueError, KeyError) as e:
                raise SystemExit(f"{args.loss}:{number}: not a loss line ({e})")
    if not steps:
        raise SystemExit(f"{args.loss}: no loss lines")
    rows = []
    for i, (s, l) in enumerate(zip(steps, losses)):
        window = losses[max(0, i - args.window + 1): i + 1]
        rows.append(f"{s} {l} {sum(window) / len(window)}")
    script = f"""
set terminal pngcairo size 720,420 noenhanced
set output '{args.out}'
set title '{args.title}'
set xlabel 'step'
set ylabel 'loss (mean squared eps error)'
set logscale y
set grid
plot '-' using 1:2 with lines lc rgb '#9ab' title 'logged', \\
     '-' using 1:3 with lines lw 2 lc rgb '#036' title 'running mean ({args.window} points)'
""" + "\n".join(rows) + "\ne\n" + "\n".join(rows) + "\ne\n"
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print(f"{args.out}: {len(steps)} points, last loss {losses[-1]:.4f} at step {steps[-1]}")


if __name__ == "__main__":
    main()
