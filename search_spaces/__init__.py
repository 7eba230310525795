"""Search spaces and spec validation from TAO skill schemas (NVIDIA's format, or standard JSON Schema).

Reading (one idea a module):

- :mod:`.schema_reader`  ``load_schema_file``, ``read_schema`` -> ``ReadSchema`` of typed ``SchemaLeaf``
- :mod:`.math_cond`      ``parse_math_cond`` (``> 0.0``, ``^ 2``, ``/ 8``, ``> depends_on`` ...)
- :mod:`.ranges`         the range/scale rules (log lr and weight decay, finite bands for Infinity)
- :mod:`.space`          ``build_search_space(schema, spec_values, SpaceRequest)`` -> ``SearchSpace``
- :mod:`.parameters`     ``Parameter``, ``DerivedValue``, ``ExcludedParameter``, ``SearchSpace``

Sampling:

- :mod:`.sampling`       ``sample_configuration(space, rng)``, ``configuration_problems(space, config)``
- :mod:`.optuna_space`   ``suggest_configuration(trial, space)``, ``define_by_run(space)``
- :mod:`.ray_space`      ``ray_param_space(space, seed)``

Specs:

- :mod:`.json_schema`    TAO vocabulary -> Draft 2020-12
- :mod:`.validation`     ``SpecValidator(tao_schema).problems(spec)``: one line per problem
- :mod:`.overrides`      YAML with line-numbered errors, ``key=value`` overrides, ``apply_values``
"""
