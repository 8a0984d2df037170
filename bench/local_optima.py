"""Clustering across arrival orders: how often online k-means ends in a local optimum.

The in-memory pipeline (``models.oracle``) runs one population in many arrival
orders (``models.arrival.interleave``) and scores each final model's segments
against the planted personas (ARI), with the centroid swap of ``models/swap.py`` and
without it. Also times ``best_swap`` alone on 2,000 users (the trainer's sample).

    python bench/local_optima.py --orders 20
    python bench/local_optima.py --users 2000 --clusters 5 --no-browsers --orders 6
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import orjson

from segstream.models.arrival import browsers, replay
from segstream.models.features import feature_space
from segstream.models.quality import adjusted_rand_index
from segstream.models.segments import Point, SegmentLearner
from segstream.models.swap import best_swap
from segstream.models.synthetic import Generator
from segstream.schemas.settings import Settings


class WithoutSwap(SegmentLearner):
    def _swap(self, centers: Any, points: list[Point]) -> bool:
        return False


def orders(args: argparse.Namespace, learner_class: type[SegmentLearner]) -> list[float]:
    s = Settings(clusterer={"type": "kmeans", "n_clusters": args.clusters})
    space = feature_space(s.features, s.paid_channels, s.social_channels, s.email_channels)
    g = Generator(users=args.users, seed=args.seed)
    outsiders = list(browsers(g.end_ms)) if args.browsers else []
    keys = sorted(g.truth)
    scores = []
    for trial in range(args.orders):
        events = [*g.events(), *outsiders] if trial % 2 == 0 else [*outsiders, *g.events()]
        result = replay(events, trial, space, learner_class(space.names, s.clusterer, seed=42))
        found = [result.segments[k] for k in keys]
        scores.append(adjusted_rand_index([g.truth[k] for k in keys], found))
    return scores


def swap_cost_ms(clusters: int, dims: int, repeat: int = 5) -> float:
    rng = random.Random(0)
    points = [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(2000)]
    centers = [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(clusters)]
    started = time.perf_counter()
    for i in range(repeat):
        best_swap(points, centers, random.Random(i))
    return (time.perf_counter() - started) / repeat * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--clusters", type=int, default=6)
    p.add_argument("--orders", type=int, default=20)
    p.add_argument("--browsers", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args()
    report: dict[str, Any] = {"users": args.users, "clusters": args.clusters}
    for name, cls in (("without_swap", WithoutSwap), ("with_swap", SegmentLearner)):
        scores = orders(args, cls)
        report[name] = {
            "orders": len(scores),
            "ari_1": sum(a > 0.999 for a in scores),
            "ari_below_0_95": sum(a < 0.95 for a in scores),
            "ari_min": round(min(scores), 3),
        }
    s = Settings()
    features = len(
        feature_space(s.features, s.paid_channels, s.social_channels, s.email_channels).names
    )
    report["best_swap_ms"] = {
        f"{k} clusters, {d} features": round(swap_cost_ms(k, d), 1)
        for k, d in ((5, features), (16, features), (64, 30))
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
