"""Linear probes on frozen features: the downstream error that the paper's scaling laws fit.

Methods (chosen per grid as `probe.method`): `ridge` (default; closed form, λ chosen on a
held-out 10%), `lion` (the paper's protocol, Appendix A.3) and `logreg` (L-BFGS reference).

Example:
    result = probe_encoder(model, "cifar10", method="ridge", resolution=64, device="cuda")
    result.error  # 1 − top-1 accuracy on the cifar10 test split
"""

from scalelab.probe.features import extract_features, probe_encoder
from scalelab.probe.run import METHODS, ProbeResult, resolve_settings, run_probe

__all__ = [
    "METHODS",
    "ProbeResult",
    "extract_features",
    "probe_encoder",
    "resolve_settings",
    "run_probe",
]
