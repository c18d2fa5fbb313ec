"""Plain-text tables of a fit and of a plan, as `scalelab fit` and `scalelab plan` print them."""

from __future__ import annotations

from collections.abc import Sequence


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _ci(interval: Sequence[float] | None) -> str:
    return "—" if interval is None else f"[{interval[0]:.4g}, {interval[1]:.4g}]"


FIT_HEADER = ("quantity", "estimate", "95% interval", "paper")
# Said wherever ridge-probe numbers are shown: the paper's probe is the authors' LION one.
RIDGE_CAVEAT = "ridge: a closed-form probe, not the paper's LION protocol"


def method_label(method: str | None) -> str:
    """The probe method as tables and legends show it, with the ridge caveat."""
    if method is None:
        return "no method"
    return RIDGE_CAVEAT if method == "ridge" else method


PLAN_HEADER = ("quantity", "prediction", "95% interval")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rendered = [fmt.format(*r).rstrip() for r in (header, *rows)]
    return [rendered[0], line, *rendered[1:]]


def render_fit(result: dict) -> str:
    """The fit of `scalelab fit` as a table with its frontier range, exclusions and notes."""
    excluded = ", ".join(f"{n} {k}" for k, n in result["excluded"].items() if n) or "none"
    front = result["frontier"]
    law = result["compute_law"]
    seeds = ", ".join(f"{n} of {k}" for k, n in result.get("seeds_per_point", {}).items())
    selection = result.get("selection") or {"dropped": 0, "dropped_runs": 0}
    loss = result.get("loss", "log")  # fits stored before --loss existed used the log loss
    lines = [
        f"target {result['target']} ({method_label(result['method'])}): "
        f"{result['n_points']} points from {result['n_runs']} runs; excluded: {excluded}",
        f"sweeps: {', '.join(result.get('sweeps', [])) or '—'}; points are seed means "
        f"(points of k seeds: {seeds or '—'})",
        f"hyper-parameters: {selection.get('rule', '—')}; dropped {selection['dropped']} "
        f"evaluations ({selection['dropped_runs']} runs)",
        f"frontier: {len(front)} points, C from {front[0]['compute']:.3g} to "
        f"{front[-1]['compute']:.3g} FLOP"
        + (
            f"; inputs unchanged since fit {result['fit_id']}, reused"
            if result.get("reused")
            else f"; stored as fit {result['fit_id']}"
            if "fit_id" in result
            else ""
        ),
        "",
    ]
    rows = [
        (
            f"E(C) = a(b+C)^-α + E∞ ({loss} loss):  α",
            _num(law["alpha"]),
            _ci(law["alpha_ci"]),
            "0.12-0.35",
        ),
        ("  E∞", _num(law["e_inf"]), _ci(law.get("e_inf_ci")), ""),
        ("  a, b", f"{_num(law['a'])}, {_num(law['b'])}", "", ""),
        (f"  R² ({'of log E' if loss == 'log' else 'of E'})", _num(law["r2"]), "", ""),
        ("  hold-out RMS log error", _num(law["holdout_log_rmse"]), "", ""),
    ]
    for key, label, paper in (
        ("params_law", "E(P) = a·P^-α + E∞:  α_P", "≈ 1"),
        ("examples_law", "E(N) = a·N^-α + E∞:  α_N", "≈ 0.35"),
    ):
        part = result[key]
        rows.append((label, _num(part and part["alpha"]), _ci(part and part["alpha_ci"]), paper))
    alloc = result["allocation"]
    at = f" (T={alloc['epochs']:g})" if alloc else ""
    rows += [
        (
            f"P*(C) ∝ C^a{at}",
            _num(alloc and alloc["params_exponent"]),
            _ci(alloc and alloc["params_exponent_ci"]),
            "≈ 0.35",
        ),
        (
            f"N*(C) ∝ C^b{at}",
            _num(alloc and alloc["examples_exponent"]),
            _ci(alloc and alloc["examples_exponent_ci"]),
            "≈ 0.65",
        ),
    ]
    rows += approach2_rows(result.get("approach2"))
    par = result["parametric"]
    if par:
        rows += [
            (
                f"E + A/P^α + B/N^β (T={par['epochs']:g}):  α",
                _num(par["alpha"]),
                _ci(par["alpha_ci"]),
                "",
            ),
            ("  β", _num(par["beta"]), _ci(par["beta_ci"]), ""),
            ("  E, A, B", f"{_num(par['E'])}, {_num(par['A'])}, {_num(par['B'])}", "", ""),
            (
                "  a = β/(α+β)",
                _num(par["params_exponent"]),
                _ci(par["params_exponent_ci"]),
                "≈ 0.35",
            ),
            (
                "  b = α/(α+β)",
                _num(par["examples_exponent"]),
                _ci(par["examples_exponent_ci"]),
                "≈ 0.65",
            ),
        ]
    else:
        rows.append(("E + A/P^α + B/N^β", "—", "—", ""))
    lines += _table(FIT_HEADER, rows)
    other = law.get("alpha_other_loss")
    if other and other["differs"]:
        why = (
            f"more than half the interval width from the {loss} loss's α"
            if law["alpha_ci"]
            else "α has no interval to judge the gap by"
        )
        lines.append(
            f"\nrobustness: under the {other['loss']} loss, α = {_num(other['alpha'])} ({why})"
        )
    boot = result["bootstrap"]
    lines.append(
        f"\nintervals: bootstrap over {boot.get('unit', 'run')}s, {boot['resamples']} resamples, "
        f"seed {boot['seed']}"
    )
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def approach2_rows(part: dict | None) -> list[tuple[str, ...]]:
    """Approach 2's exponents (IsoFLOP minima), or one row saying there are none."""
    if not part:
        return [("IsoFLOP minima (Approach 2)", "—", "—", "")]
    at = f"{part['n_profiles']} profiles, T={part['epochs']:g}"
    return [
        (
            f"IsoFLOP ({at}):  P* ∝ C^a",
            _num(part["params_exponent"]),
            _ci(part["params_exponent_ci"]),
            "",
        ),
        ("  N* ∝ C^b", _num(part["examples_exponent"]), _ci(part["examples_exponent_ci"]), ""),
    ]


def render_plan(plan: dict) -> str:
    """The forecast of `scalelab plan` as a table and the configuration to run."""
    rows = [
        ("best error E(C)", _num(plan["predicted_error"]), _ci(plan["predicted_error_ci"])),
        ("P*(C) parameters", _num(plan["params"]), _ci(plan["params_ci"])),
        ("N*(C) examples", _num(plan["examples"]), _ci(plan["examples_ci"])),
    ]
    two = plan.get("approach2")
    if two:
        rows += [
            ("P*(C) (Approach 2)", _num(two["params"]), _ci(two["params_ci"])),
            ("N*(C) (Approach 2)", _num(two["examples"]), _ci(two["examples_ci"])),
        ]
    lines = [f"target {plan['target']}, budget C = {plan['budget']:.4g} FLOP", ""]
    lines += _table(PLAN_HEADER, rows)
    config = plan["config"]
    if config:
        lines.append(
            f"\nrun: {config['model']} ({config['params']:,} parameters, {config['flops']:,} "
            f"FLOP per example) on N = {config['examples']:,} examples for "
            f"T = {config['epochs']:.4g} epochs (C = {config['compute']:.4g} FLOP)"
        )
    lines += [f"note: {n}" for n in plan["notes"]]
    return "\n".join(lines)


BACKTEST_HEADER = (
    "law",
    "predicts",
    "held out",
    "relative error",
    "95% interval",
    "RMS log error",
    "95% interval",
    "decades",
)
LAW_NAMES = {
    "compute_law": "E(C) = a(b+C)^-α + E∞",
    "params_law": "E(P) = a·P^-α + E∞",
    "examples_law": "E(N) = a·N^-α + E∞",
    "allocation": "Approach 1 (curves)",
    "approach2": "Approach 2 (IsoFLOP)",
    "parametric": "Approach 3 E(P, N)",
}


def render_backtest(result: dict) -> str:
    """The backtest of `scalelab backtest`: each law's error on the held-out points."""
    hold = result["holdout"]
    rule = (
        f"compute above {hold['value']:.4g} FLOP"
        if hold["rule"] == "above"
        else f"the {hold['value']} largest budgets"
    )
    lines = [
        f"target {result['target']}: fitted on {hold['n_fitted']} points (C up to "
        f"{hold['max_fitted_compute']:.3g} FLOP), held out {hold['n_heldout']} with {rule}; "
        f"T={result['epochs']:g} for Approaches 1-3",
        "",
    ]
    rows = []
    for row in result["laws"]:
        name = LAW_NAMES[row["law"]]
        if row.get("note"):
            rows.append((name, row["quantity"], "0", f"not checked: {row['note']}", "", "", "", ""))
            continue
        rows.append(
            (
                name,
                row["quantity"],
                str(row["n_heldout"]),
                _pct(row["relative_error"]),
                _ci_pct(row["relative_error_ci"]),
                _num(row["rms_log_error"]),
                _ci(row["rms_log_error_ci"]),
                f"{row['decades']:.2f}",
            )
        )
    lines += _table(BACKTEST_HEADER, rows)
    boot = result["fit"]["bootstrap"]
    lines.append(
        f"\nintervals: the laws fitted on {boot['resamples']} bootstrap resamples of the fitted "
        "runs; decades: log10 of the largest held-out compute over the largest fitted"
    )
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _ci_pct(interval: Sequence[float] | None) -> str:
    return "—" if interval is None else f"[{100 * interval[0]:.2f}%, {100 * interval[1]:.2f}%]"
