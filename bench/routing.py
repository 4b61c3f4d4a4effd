"""Routing throughput over the Hangzhou pack: point-in-area lookup (AreaIndex over STRtree) for
random points in the city's bounding box, vectorised and one at a time, and Router.route.

    python -m bench.routing --points 100000

Prints cases per second; the ratio batch / single says what vectorising the lookup buys.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench._common import header, load_rules, percentile


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=100000, help="random points for locate_many (default 100000)")
    p.add_argument("--single", type=int, default=5000, help="points located one at a time (default 5000)")
    p.add_argument("--routes", type=int, default=100000, help="Router.route calls (default 100000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is shown (default 3)")
    p.add_argument("--pack", default="hangzhou")
    args = p.parse_args(argv)
    header("routing throughput (AreaIndex point-in-area, Router.route)", sys.argv[1:] if argv is None else argv)

    t0 = time.perf_counter()
    pack, rules = load_rules(args.pack)
    areas, router = rules.areas, rules.router
    t_load = time.perf_counter() - t0
    districts, grids = pack.districts(), pack.grids()
    import shapely
    minx, miny, maxx, maxy = shapely.union_all([d.geometry for d in districts]).bounds
    print(f"size: pack {pack.name}: {len(districts)} districts, {len(grids)} grids, "
          f"{len(pack.routing_rules)} routing rules; bbox lon {minx:.3f}–{maxx:.3f}, lat {miny:.3f}–{maxy:.3f}; "
          f"{args.points:,} batch points, {args.single:,} single points, {args.routes:,} routes; "
          f"best of {args.repeat}")
    print(f"pack load + index build: {t_load:.2f} s")

    rng = np.random.default_rng(42)
    lons = rng.uniform(minx, maxx, args.points)
    lats = rng.uniform(miny, maxy, args.points)

    holder = {}
    t_batch = _best(lambda: holder.__setitem__("r", areas.locate_many(lons, lats)), args.repeat)
    d_codes, g_codes = holder["r"]
    hit_d = sum(1 for d in d_codes if d) / len(d_codes)
    hit_g = sum(1 for g in g_codes if g) / len(g_codes)
    batch_rate = args.points / t_batch
    print(f"locate_many: {args.points:,} points in {t_batch * 1e3:.0f} ms = {batch_rate:,.0f} cases/s "
          f"({hit_d:.1%} inside a district, {hit_g:.1%} inside a grid; the rest is outside the city)")

    n1 = min(args.single, args.points)
    single_times: list[float] = []

    def singles():
        single_times.clear()
        for x, y in zip(lons[:n1].tolist(), lats[:n1].tolist()):
            s0 = time.perf_counter()
            areas.locate(x, y)
            single_times.append(time.perf_counter() - s0)

    t_single = _best(singles, args.repeat)
    single_rate = n1 / t_single
    st = sorted(single_times)
    print(f"locate (one point): {n1:,} points in {t_single * 1e3:.0f} ms = {single_rate:,.0f} cases/s "
          f"(p50 {percentile(st, 50) * 1e6:.0f} µs, p95 {percentile(st, 95) * 1e6:.0f} µs)")
    print(f"ratio locate_many / locate: {batch_rate / single_rate:.1f}x")

    # route the located points with categories drawn like the demo feed draws them
    cats = [c for c in pack.categories]
    weights = np.array([max(c.demo_weight, 0.0) for c in cats], dtype=float)
    pick = rng.choice(len(cats), size=args.routes, p=weights / weights.sum())
    idx = rng.integers(0, args.points, args.routes)
    work = [(cats[k].code, d_codes[i], g_codes[i]) for k, i in zip(pick.tolist(), idx.tolist())]
    routed = {}

    def routes():
        routed["n_rule"] = sum(1 for c, d, g in work if router.route(c, d, g).rule_id is not None)

    t_route = _best(routes, args.repeat)
    route_rate = args.routes / t_route
    print(f"Router.route: {args.routes:,} cases in {t_route * 1e3:.0f} ms = {route_rate:,.0f} cases/s "
          f"({routed['n_rule'] / args.routes:.1%} matched a rule, the rest went to triage)")
    both = 1.0 / (1.0 / batch_rate + 1.0 / route_rate)
    print(f"locate_many + route: {both:,.0f} cases/s end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
