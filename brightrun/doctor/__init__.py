"""`brightrun doctor`: checks each provider before a job spends money: the key, the models, and with
--live one tiny structured request (checks.py); the probe request and its answer (probe.py); what each
failure means and how to fix it (messages.py); every output schema the package sends (schemas.py).

May import: aio, errors, models, providers, quality, secrets, workspace.
"""

from brightrun.doctor.checks import estimate_probe, run_doctor

__all__ = ["estimate_probe", "run_doctor"]
