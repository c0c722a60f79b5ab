"""Built-in benchmarks: the Cosmos-Reason1 embodied-reasoning suite and the offline `synthphys` benchmark.

Registered through the public ``reasonkit`` entry-point group, exactly as a third-party package would.
"""

from reasonkit.hookspecs import hookimpl

UPSTREAM = {
    "av": "Autonomous-vehicle driving clips (Cosmos-Reason1 AV)",
    "robovqa": "RoboVQA robot manipulation video QA (110 questions on 101 videos)",
    "agibot": "AgiBot-World manipulation clips",
    "bridgev2": "BridgeData V2 manipulation clips",
    "holoassist": "HoloAssist egocentric assistance clips",
    "robofail": "RoboFail failure-detection clips",
}


@hookimpl
def reasonkit_register_benchmarks(register):
    for name, description in UPSTREAM.items():
        register(name, f"reasonkit_benchmarks.upstream:{name}", description=description)
    register("synthphys", "reasonkit_benchmarks.upstream:synthphys",
             description="Procedural physical-reasoning clips (reasonkit synth benchmark)")
