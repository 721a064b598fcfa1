# chart 0.3.1's bucket-init (templates/platform-scripts-configmap.yaml at a52b430), kept verbatim as
# the control of tests/integration/test_bucket_init.py: one boto3 client for every retry.
"""Create the platform's buckets if they are missing; safe to run any number of times.

Retries until the object store answers (the in-cluster store may still be starting),
up to WAIT_TIMEOUT_SECONDS. Endpoint, region and credentials come from the AWS_* env.
"""

import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
        config=Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": os.environ.get("S3_ADDRESSING_STYLE", "auto")},
        ),
    )


def ensure(s3, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        print(f"bucket {bucket}: exists", flush=True)
        return
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403:
            sys.exit(f"bucket {bucket}: exists but these credentials may not use it (403)")
        if status != 404:
            raise
    kwargs = {"Bucket": bucket}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
        print(f"bucket {bucket}: created", flush=True)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        print(f"bucket {bucket}: exists", flush=True)


def main() -> None:
    buckets = [b for b in os.environ["BUCKETS"].split(",") if b]
    region = os.environ.get("AWS_DEFAULT_REGION", "")
    deadline = time.monotonic() + float(os.environ.get("WAIT_TIMEOUT_SECONDS", "600"))
    s3 = client()
    pending = list(buckets)
    while pending:
        try:
            ensure(s3, pending[0], region)
            pending.pop(0)
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                sys.exit(f"object store did not answer in time: {exc}")
            print(f"waiting for the object store: {exc}", flush=True)
            time.sleep(3)
    print("all buckets present: " + ", ".join(buckets), flush=True)


if __name__ == "__main__":
    main()
