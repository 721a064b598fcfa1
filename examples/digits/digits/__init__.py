"""Code that runs inside trainer pods: one module per pipeline stage.

Run a stage with `python -m digits <stage> [options]`; each stage
writes its small JSON result to `$XCOM_DIR/return.json`, the file the
KubernetesPodOperator reads back as the task's XCom.
"""
