"""The digits classifier, the platform's shipped pipeline: a trainer like any team's, written
against the trainer contract and its SDK (`trainyard.sdk`, docs/trainer-contract.md).

Run a stage with `python -m digits <stage> [options]`; each stage writes its small JSON result
to `$XCOM_DIR/return.json`, the file the KubernetesPodOperator reads back as the task's XCom.
"""
