# The batch templates of scripts/slurm/ (issue 35). slurm.template_logic runs them with stand-ins for srun and
# scontrol (names, --restart, -c, requeue, signals; tests/slurm/slurm_names.py, a second, anywhere). The others
# use a real Slurm: scripts/slurm-cluster.sh starts a one-node cluster of this machine's CPUs (Debian's
# slurm-wlm and munge, installed when missing, as root) and stops exactly what it started; slurm.templates
# submits the templates to it as a user on a small node would (tests/slurm/slurm_templates.py: the checks are in
# its docstring) and slurm.harness checks the harness's own clean-up (tests/slurm/slurm_harness.py). They skip
# (77) with the reason where Slurm cannot be installed or its daemons cannot start. Not in the sanitizer build
# (scripts/test-sanitizers.sh runs the suite again): the templates and the harness are the same there.
# slurm.templates keeps both cores busy for 60 to 90 s (PROCESSORS 2); the time limit in it is
# Slurm's --time=2 with --signal=USR1@80, and requeued jobs are held 10 s (the harness's --cred-expire, Slurm's
# default being 120 s).
if(TARGET terse AND NOT terse_ENABLE_SANITIZERS)
  add_test(NAME slurm.template_logic
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/slurm_names.py --templates ${PROJECT_SOURCE_DIR}/scripts/slurm)
  set_tests_properties(slurm.template_logic PROPERTIES LABELS slurm TIMEOUT 120)
  add_test(NAME slurm.templates
    COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/slurm-cluster.sh --install --oversubscribe 8 --time-limit 420 --
            /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/slurm_templates.py --terse $<TARGET_FILE:terse>
            --mpiexec ${MPIEXEC_EXECUTABLE} --deck ${CMAKE_CURRENT_LIST_DIR}/../data/decks/checkpoint_cd_adam.yaml
            --templates ${PROJECT_SOURCE_DIR}/scripts/slurm --probe ${CMAKE_CURRENT_LIST_DIR}/cpus_probe.sh)
  set_tests_properties(slurm.templates PROPERTIES LABELS slurm PROCESSORS 2 SKIP_RETURN_CODE 77 TIMEOUT 480
                       RESOURCE_LOCK slurm_cluster)
  add_test(NAME slurm.harness
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/slurm_harness.py
            --cluster ${PROJECT_SOURCE_DIR}/scripts/slurm-cluster.sh --install)
  set_tests_properties(slurm.harness PROPERTIES LABELS slurm SKIP_RETURN_CODE 77 TIMEOUT 240
                       RESOURCE_LOCK slurm_cluster)
endif()
