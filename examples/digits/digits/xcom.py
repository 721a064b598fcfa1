"""The stage result contract (`$XCOM_DIR/return.json`) by its older name; the one copy of the
code is the SDK's (`trainyard.sdk.result`), which trainers install on their own."""

from trainyard.sdk.result import (
    DEFAULT_XCOM_DIR,
    MAX_RESULT_BYTES,
    RETURN_FILE,
    write_result,
    xcom_dir,
)

__all__ = ["DEFAULT_XCOM_DIR", "MAX_RESULT_BYTES", "RETURN_FILE", "write_result", "xcom_dir"]
