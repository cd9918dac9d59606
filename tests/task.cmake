# The built-in task and the simulated annotator (common/task).
oaif_test(task SOURCES test_task.c LIBS oaif_task)
oaif_test(task_demo SOURCES test_task_demo.c LIBS oaif_task m)
oaif_test(task_rules SOURCES test_task_rules.c LIBS oaif_task)
