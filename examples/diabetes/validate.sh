#!/bin/sh
# validate: the day's CSV has the diabetes columns, only numbers, and enough rows.
#
#   sh validate.sh s3://bucket/key.csv [min_rows]
#
# No SDK, no Python: the trainer contract alone. The object is fetched with curl's own SigV4
# signing from the contract's AWS_* variables; the result goes to $XCOM_DIR/return.json, and a
# failure is one line in $TRAINYARD_TERMINATION_LOG (and stderr) with a non-zero exit.
set -u

COLUMNS_EXPECTED="age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,target"

fail() {
  echo "validate: error: $*" >&2
  if [ -n "${TRAINYARD_TERMINATION_LOG:-}" ]; then
    echo "validate: error: $*" > "$TRAINYARD_TERMINATION_LOG" 2>/dev/null || true
  fi
  exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: validate.sh s3://bucket/key.csv [min_rows]" >&2; exit 2; }
url=$1
min_rows=${2:-100}
case $min_rows in ''|*[!0-9]*) fail "min_rows must be a whole number, got '$min_rows'" ;; esac
case $url in
  s3://*/*) ;;
  *) fail "$url: not an s3://bucket/key URL" ;;
esac
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] \
  || fail "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (the object store's keys)"

location=${url#s3://}
bucket=${location%%/*}
key=${location#*/}
region=${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}
endpoint=${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}
if [ -n "$endpoint" ]; then
  http_url="${endpoint%/}/$bucket/$key"  # path style: MinIO, SeaweedFS
else
  http_url="https://$bucket.s3.$region.amazonaws.com/$key"
fi

work=$(mktemp -d) || fail "cannot create a temporary folder"
trap 'rm -rf "$work"' EXIT
data="$work/data.csv"
# A session token (temporary credentials) is signed as a header; none is the common case.
set -- -sS -o "$data" -w '%{http_code}' --aws-sigv4 "aws:amz:$region:s3" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
if [ -n "${AWS_SESSION_TOKEN:-}" ]; then
  set -- "$@" -H "x-amz-security-token: $AWS_SESSION_TOKEN"
fi
status=$(curl "$@" "$http_url" 2>"$work/curl.err") \
  || fail "$url: cannot be fetched from $http_url: $(tr '\n' ' ' < "$work/curl.err")"
[ "$status" = 200 ] || fail "$url: the object store answered HTTP $status"

# One pass: the header, then every row's field count and numbers. The first problem is the error.
problem=$(awk -F, -v expected="$COLUMNS_EXPECTED" '
  { sub(/\r$/, "") }
  NR == 1 {
    if ($0 != expected) { print "header is \"" $0 "\", expected \"" expected "\""; exit }
    columns = NF; next
  }
  NF != columns { print "line " NR ": " NF " fields, expected " columns; exit }
  {
    for (i = 1; i <= NF; i++)
      if ($i !~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/) {
        print "line " NR ", column " i ": \"" $i "\" is not a number"; exit
      }
  }
  END { if (NR == 0) print "the file is empty" }
' "$data")
[ -z "$problem" ] || fail "$url: $problem"

rows=$(($(wc -l < "$data") - 1))
[ "$rows" -ge "$min_rows" ] || fail "$url: $rows rows, fewer than the minimum $min_rows"
columns=$(echo "$COLUMNS_EXPECTED" | awk -F, '{ print NF }')

dir=${XCOM_DIR:-/airflow/xcom}
mkdir -p "$dir" || fail "cannot create $dir"
printf '{"data_url": "%s", "rows": %d, "columns": %d}\n' "$url" "$rows" "$columns" \
  > "$dir/.return.json.tmp" || fail "cannot write $dir/return.json"
mv "$dir/.return.json.tmp" "$dir/return.json"  # atomic, and only on success
echo "validate: $url: $rows rows, $columns columns"
