"""Where the GPU step (`model_pass`: val_predictions and saliency_maps) runs: pool `gpu` on one
machine (limit 1 in dagster.yaml), on Kubernetes a pod that requests one NVIDIA GPU on a GPU node,
under Celery the `gpu` queue, which only the GPU machines' workers consume."""
GPU_POOL = "gpu"

# dagster-k8s reads this tag when the k8s_job_executor launches the step's pod (deploy/helm/)
GPU_OP_TAGS = {
    "dagster-celery/queue": "gpu",
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": 1}}},
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
}
