"""Building blocks of the training DAG. Light to import: the DAG file is parsed often.

No module here imports torch or MLflow. The modules the DAG file imports at its top do not
import the Kubernetes client either: `kubernetes` (pod specs, which does) and `local_pod`
(standalone's operator) load only once `pod_tasks.PodTasks` knows its runtime.
"""
