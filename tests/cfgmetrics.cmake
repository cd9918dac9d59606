# cfg (configuration layering, YAML run file) and metrics (Prometheus text, /metrics, /healthz).
oaif_test(cfg SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cfg.c LIBS oaif_runtime TIMEOUT 60)
oaif_test(metrics SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c LIBS oaif_runtime TIMEOUT 60)
