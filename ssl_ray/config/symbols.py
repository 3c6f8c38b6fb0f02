"""The symbols each objective's paper writes its hyperparameters with: reports and the results API label axes,
columns and trials with them (``objective.lam`` -> λ). Each objective class declares its own as
``symbols = OBJECTIVE_SYMBOLS[<name>]``; they live here, in the torch-free config, so that naming a trial
(``ssl_ray.results.load``) never imports torch. Barlow's λ is written λ_BT: VICReg's and MMCR's ``lam`` are λ
too, and a mixed sweep must tell them apart.
"""

OBJECTIVE_SYMBOLS = {
    "vicreg": {"lam": "λ", "mu": "µ", "nu": "ν", "gamma": "γ"},
    "simclr": {"temperature": "τ"},
    "barlow": {"lambd": "λ_BT"},
    "mmcr": {"lam": "λ", "momentum": "m"},
    "arb": {},
}
