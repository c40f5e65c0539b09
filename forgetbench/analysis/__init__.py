"""When and why a run forgot: ``forgetbench analyze RUN_DIR`` (:mod:`.command`).

- :mod:`.probe`: the recovery probe (spurious or real forgetting);
- :mod:`.where`: each module group's weight change and its share of the general loss;
- :mod:`.cka`: the drift of each layer's representations from the base model's, per step.
"""
