"""Scale-out: the cluster configs pass Ray's own validation; a sweep runs on a real 3-node
``ray.cluster_utils.Cluster`` with a trial's two Train workers on different nodes (DDP over gloo, each reading
its shard of a .beton through FFCV) and its probe fan-out, storage in one shared directory; and on the fake
autoscaling cluster of
``cluster-local.yaml`` the autoscaler adds the worker nodes that a 2-trial sweep asks for."""

import copy
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import LIGHT_PROBES, PY, ROOT, SweepRun


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


# -- the configs -------------------------------------------------------------------------------------


def test_cluster_configs_pass_ray_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    aws, local = load("cluster.yaml"), load("cluster-local.yaml")
    validate_config(aws)
    validate_config(prepare_config(copy.deepcopy(aws)))  # as `ray up` sees it, AWS defaults filled in
    validate_config(local)
    # one shape in both: a head that does no work, a pretraining type and a probe type
    assert (
        set(aws["available_node_types"])
        == set(local["available_node_types"])
        == {"ray.head.default", "ray.worker.train", "ray.worker.probe"}
    )
    for c in (aws, local):
        assert c["available_node_types"]["ray.head.default"]["resources"] == {"CPU": 0}
    assert local["provider"]["type"] == "fake_multinode" and aws["provider"]["type"] == "aws"


def test_validation_rejects_a_misspelt_field():
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    bad = load("cluster.yaml")
    bad["available_node_types"]["ray.worker.train"]["max_wrkers"] = 4
    with pytest.raises(jsonschema.ValidationError, match="max_wrkers"):
        validate_config(bad)


def test_cluster_yaml_keeps_servers_local_and_credentials_out():
    text = (ROOT / "cluster.yaml").read_text()
    assert not re.search(r"(?i)aws_(access_key_id|secret_access_key|session_token)\s*[:=]|AKIA[0-9A-Z]{16}", text)
    c = load("cluster.yaml")
    head = " ".join(c["head_start_ray_commands"])
    assert "mlflow server --host 127.0.0.1" in head and "--dashboard-host=127.0.0.1" in head
    # the workers reach the head's MLflow through an SSH tunnel to its loopback address
    assert "-L 127.0.0.1:5000:127.0.0.1:5000" in " ".join(c["worker_start_ray_commands"])
    # every node installs the project with the README's own setup script, FFCV's system packages first
    setup = " ".join(c["setup_commands"])
    assert "bash scripts/setup.sh" in setup and "libturbojpeg0-dev" in setup
    assert (ROOT / "scripts" / "setup.sh").is_file()
    assert c["file_mounts"]["~/ssl_ray"] == "." and ".venv" in c["rsync_exclude"]


def test_the_heads_mlflow_keeps_its_runs_in_postgresql_without_a_password():
    """The head's MLflow server writes to PostgreSQL (SQLite serializes concurrent writers: docs/cluster.md),
    over the Unix socket with peer authentication: no password in the file or anywhere else."""
    from sqlalchemy.engine import make_url

    c = load("cluster.yaml")
    setup, start = " ".join(c["head_setup_commands"]), " ".join(c["head_start_ray_commands"])
    assert "apt-get install -y -qq postgresql" in setup and "createdb -O ubuntu mlflow" in setup
    assert "pg_dump -Fc -d mlflow -f /mnt/shared/mlflow/" in setup and "pg_restore --no-owner -d mlflow" in setup
    uri = make_url(re.search(r"--backend-store-uri '([^']+)'", start).group(1))
    assert uri.drivername == "postgresql+psycopg" and uri.username == "ubuntu" and uri.password is None
    assert uri.host is None and uri.query == {"host": "/var/run/postgresql"} and uri.database == "mlflow"
    assert not re.search(r"(?i)(password|PGPASS\w*)\s*[:=]", (ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_is_locked_down():
    """SSH only from the CIDR the user sets, least-privilege instance profiles, IMDSv2 on every node, a tunnel
    key that can forward to MLflow's port and nothing else, EFS over TLS (Ray's defaults: SSH from anywhere,
    full EC2 and S3 access, IMDSv1 allowed)."""
    c = load("cluster.yaml")
    for name, node in c["available_node_types"].items():
        nc = node["node_config"]
        assert nc["SecurityGroupIds"], name  # our group: Ray makes its own (SSH from 0.0.0.0/0) only without one
        assert nc["IamInstanceProfile"]["Arn"].endswith("-head" if name == "ray.head.default" else "-worker"), name
        assert (
            nc["MetadataOptions"]["HttpTokens"] == "required" and nc["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        )
    key_line = next(cmd for cmd in c["head_setup_commands"] if "ssl_ray_tunnel.pub" in cmd)
    assert 'permitopen=\\"127.0.0.1:5000\\"' in key_line and 'permitlisten=\\"127.0.0.1:1\\"' in key_line
    assert 'permitlisten=\\"none\\"' not in key_line  # sshd rejects the whole key for it
    assert key_line.split('echo "', 1)[1].startswith("restrict,") and 'command=\\"/bin/false\\"' in key_line
    mount = next(cmd for cmd in c["setup_commands"] if "/mnt/shared" in cmd and "mount" in cmd)
    assert "mount -t efs -o tls" in mount and "nfs4" not in mount

    cfn = load("cluster-aws.cfn.yaml")
    res = cfn["Resources"]
    ssh = res["NodeSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ssh == [dict(ssh[0], CidrIp={"Ref": "AdminCidr"})] and ssh[0]["FromPort"] == ssh[0]["ToPort"] == 22
    assert "0.0.0.0/0" not in (ROOT / "cluster-aws.cfn.yaml").read_text()
    assert res["IntraClusterIngress"]["Properties"]["SourceSecurityGroupId"] == {
        "Fn::GetAtt": ["NodeSecurityGroup", "GroupId"]
    }
    statements = res["HeadRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = [a for st in statements for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])]
    assert not [a for a in actions if a.endswith("*") or a.startswith(("s3:", "iam:Create", "iam:Put"))], actions
    for st in statements:  # whatever changes an instance is bound to this cluster's tag
        if set(st["Action"]) & {"ec2:TerminateInstances", "ec2:StopInstances"}:
            assert "aws:ResourceTag/ray-cluster-name" in str(st["Condition"])
    assert (
        "Policies" not in res["WorkerRole"]["Properties"] and "ManagedPolicyArns" not in res["WorkerRole"]["Properties"]
    )


# -- a sweep on several nodes ------------------------------------------------------------------------


def trial_runs(uri: str, name: str):
    return SweepRun(None, uri, name, None).trials


def sweep_cmd(address: str, name: str, tmp_path: Path, *extra: str) -> list:
    return [
        PY,
        str(ROOT / "experiments" / "sweep_vicreg.py"),
        "--address",
        address,
        "--name",
        name,
        "--epochs",
        "1",
        "--set",
        "model.depth=1",
        "--search",
        "objective.lam=[25]",
        "--storage-path",
        str(tmp_path / "shared"),
        "--no-report",
        "--mlflow-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        *LIGHT_PROBES,
        *extra,
    ]


def run_sweep(cmd, env=None, timeout=900):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def three_nodes():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [c.add_node(num_cpus=2), c.add_node(num_cpus=2)]
    c.wait_for_nodes()
    yield c, [c.head_node.node_id] + [w.node_id for w in workers]
    c.shutdown()


@pytest.fixture
def digits_beton(tmp_path):
    """``ssl-ray data write-beton`` of the digits into the shared directory, started before the cluster (the
    fixture after this one) so that the two start up side by side; yields ``(path, process)``."""
    beton = tmp_path / "shared" / "digits_train.beton"
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "ssl_ray.cli",
            "data",
            "write-beton",
            "--dataset",
            "digits",
            "--split",
            "train",
            "--out",
            str(beton),
            "--write-mode",
            "raw",
            "--num-workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    yield beton, proc
    proc.kill()


# 95 s, out of the default suite's 10 minutes; the ImageNet-shaped test (slow) spreads its workers too
@pytest.mark.slow
def test_trial_spreads_its_train_workers_over_nodes(digits_beton, three_nodes, tmp_path):
    """Two DDP workers on two nodes, each reading its own shard of a .beton through FFCV."""
    cluster, node_ids = three_nodes
    beton, writer = digits_beton
    out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert "1437 samples, 10 classes" in out
    run_sweep(
        sweep_cmd(
            cluster.address,
            "spread",
            tmp_path,
            "--search",
            "model.width=[4]",
            "--workers",
            "2",
            "--set",
            "train.placement_strategy=STRICT_SPREAD",
            "--beton",
            str(beton),
            "--augment",
            "simclr",
            "--batch-size",
            "64",
        )
    )
    (run,) = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "spread")
    tags = run.data.tags
    train_nodes = tags["ssl_ray.train.nodes"].split(",")
    assert len(train_nodes) == 2 and len(set(train_nodes)) == 2 and set(train_nodes) <= set(node_ids)
    assert tags["ssl_ray.world_size"] == "2" and tags["ssl_ray.ddp_backend"] == "gloo"
    assert tags["ssl_ray.loader"] == "FFCVViews"
    # 1437 images, trimmed to 1436, split over 2 ranks, 64 per rank per step
    assert tags["ssl_ray.steps_per_epoch"] == str(1436 // 2 // 64)
    assert tags["ssl_ray.status"] == "finished" and tags["ssl_ray.probe.status"] == "complete"
    assert "probe/class/ncc_test/block1" in run.data.metrics
    assert set(tags["ssl_ray.probe.nodes"].split(",")) <= set(node_ids)
    # the checkpoints the probes read lie in the shared storage directory
    assert list((tmp_path / "shared" / "spread" / "train").glob("*/epoch_0001/state.pt"))


@pytest.mark.slow  # 70 s; tests/e2e/test_imagenet_cluster.py (slow too) runs the ImageNet recipe on the same cluster
def test_autoscaler_adds_worker_nodes_for_a_sweep(fake_autoscaling_cluster, tmp_path):
    """The head has 0 CPUs; each trial asks for 2 Train workers: nothing runs until the autoscaler adds nodes."""
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    monitor_log = fake_autoscaling_cluster
    t0 = time.time()
    run_sweep(
        sweep_cmd(
            "auto", "autoscaled", tmp_path, "--search", "model.width=[4,8]", "--workers", "2", "--cpus-per-worker", "1"
        )
    )
    runs = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "autoscaled")
    assert len(runs) == 2
    launched = re.findall(r"Adding (\d+) node\(s\) of type (\S+)\.", monitor_log.read_text())
    assert sum(int(n) for n, _ in launched) >= 1, monitor_log.read_text()[-3000:]
    for run in runs:
        tags = run.data.tags
        assert tags["ssl_ray.status"] == "finished" and tags["ssl_ray.probe.status"] == "complete", tags
        assert "probe/class/ncc_test/block1" in run.data.metrics
        for key in ("ssl_ray.train.nodes", "ssl_ray.probe.nodes"):
            nodes = set(tags[key].split(","))
            assert nodes and FAKE_HEAD_NODE_ID not in nodes, (key, nodes)
    print(f"autoscaled sweep: {time.time() - t0:.0f}s, launches {launched}")


def test_scaling_config_asks_for_the_trials_gpus_and_placement():
    from ssl_ray.config import TrainConfig
    from ssl_ray.sweep.trainer import scaling_config

    s = scaling_config(TrainConfig(workers=8, cpus_per_worker=11, gpus_per_worker=1, placement_strategy="SPREAD"))
    assert s.num_workers == 8 and s.use_gpu and s.placement_strategy == "SPREAD"
    assert s.resources_per_worker == {"CPU": 11, "GPU": 1}
    half = scaling_config(TrainConfig(workers=2, gpus_per_worker=0.5))  # two workers share a GPU
    assert half.resources_per_worker == {"CPU": 1.0, "GPU": 0.5} and half.use_gpu
    cpu = scaling_config(TrainConfig(workers=2))
    assert cpu.resources_per_worker == {"CPU": 1.0} and not cpu.use_gpu and cpu.placement_strategy == "PACK"
