"""The facetrain job API from Python, as another program drives it: submit (with a retry-safe
request id), watch to the end, list a page at a time, cancel, delete, and read the field an
INVALID_ARGUMENT names.

Generate the stubs from the repository's protos, then run it against a coordinator with at least
one worker:

    pip install grpcio==1.76.0 grpcio-tools==1.76.0 grpcio-status==1.76.0
    python -m grpc_tools.protoc -I proto/proto --python_out=gen --grpc_python_out=gen \
        proto/proto/facetrain/v1/jobs.proto
    PYTHONPATH=gen python examples/python/client.py --address 127.0.0.1:7070 --job job.toml

The job file's dataset paths must be absolute (or URLs): the coordinator refuses relative ones.
`make test` runs this script against a real coordinator and worker (tests/tests/api.rs), so
every call below is checked against the server as it is.
"""

import argparse
import datetime
import sys
import uuid

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from facetrain.v1 import jobs_pb2, jobs_pb2_grpc

ENDED = {jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED}


def state(job):
    return jobs_pb2.JobState.Name(job.state)


def submit(jobs, job_toml, request_id):
    """Submits once, retrying on UNAVAILABLE: the request id makes a retry return the same job."""
    request = jobs_pb2.SubmitJobRequest(job_toml=job_toml, submitted_by="python-example", request_id=request_id)
    for attempt in range(3):
        try:
            return jobs.SubmitJob(request, timeout=10).job
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 2:
                raise
    raise AssertionError("unreachable")


def watch(jobs, job_id):
    """Prints each change until the job ends; returns the last event's job."""
    last = None
    for event in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=300):
        last = event.job
        loss = f"{last.train_loss:.4f}" if last.HasField("train_loss") else "-"
        print(f"  {last.id} {state(last)} step {last.step}/{last.max_steps} loss {loss}")
        if last.state in ENDED:
            break
    return last


def list_all(jobs, page_size, states=()):
    """Every job, a page at a time; returns (jobs, number of pages)."""
    found, token, pages = [], "", 0
    while True:
        page = jobs.ListJobs(jobs_pb2.ListJobsRequest(page_size=page_size, page_token=token, states=states))
        found.extend(page.jobs)
        pages += 1
        token = page.next_page_token
        if not token:
            return found, pages


def bad_request_field(error):
    """The field a google.rpc.BadRequest detail of an RPC error names."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return [violation.field for violation in bad_request.field_violations]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="coordinator host:port (plain-text gRPC)")
    parser.add_argument("--job", required=True, help="a job.toml that ends in a few steps")
    args = parser.parse_args()
    with open(args.job) as file:
        job_toml = file.read()

    with grpc.insecure_channel(args.address) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)

        # Submit; the same request again (a client retrying after a timeout) gets the same job.
        request_id = str(uuid.uuid4())
        first = submit(jobs, job_toml, request_id)
        again = submit(jobs, job_toml, request_id)
        assert again.id == first.id, f"a retry created a second job: {first.id}, {again.id}"
        print(f"submitted {first.id} ({state(first)}), created {first.create_time.ToDatetime().isoformat()}Z")

        # Watch it to the end.
        done = watch(jobs, first.id)
        assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED, f"{first.id} ended {state(done)}: {done.message}"
        assert done.HasField("end_time") and done.end_time.ToDatetime() >= done.create_time.ToDatetime()
        running = done.running_time.ToTimedelta()
        assert running > datetime.timedelta(0), "a job that trained has a running time"
        print(f"{done.id} succeeded after {done.step} steps, {running.total_seconds():.1f} s running")

        # Two more jobs: the first waits for the worker, then runs; cancel both.
        later = [submit(jobs, job_toml, str(uuid.uuid4())) for _ in range(2)]
        for job in later:
            try:
                month = duration_pb2.Duration(seconds=30 * 86400)
                jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.id, requested_by="example", hands_on=month))
                raise AssertionError("a hands-on time of a month was accepted")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
                fields = bad_request_field(error)
                assert fields == ["hands_on"], f"BadRequest names {fields}"
            minutes = duration_pb2.Duration(seconds=90)
            cancelled = jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.id, requested_by="example", hands_on=minutes))
            assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED, state(cancelled)
            toil = cancelled.toil[-1]
            assert toil.kind == jobs_pb2.TOIL_KIND_CANCEL and toil.hands_on.seconds == 90, toil
        print(f"cancelled {', '.join(j.id for j in later)}; a month of hands-on time was refused (field hands_on)")

        # List a page at a time; a state filter; BASIC leaves the job.toml out.
        ids = {first.id} | {j.id for j in later}
        listed, pages = list_all(jobs, page_size=1)
        assert ids <= {j.id for j in listed}, f"listing missed {ids - {j.id for j in listed}}"
        assert pages >= len(ids), f"{len(listed)} jobs in {pages} pages of 1"
        assert all(not j.job_toml for j in listed), "the BASIC view carries no job.toml"
        cancelled_only, _ = list_all(jobs, page_size=50, states=[jobs_pb2.JOB_STATE_CANCELLED])
        assert {j.id for j in later} <= {j.id for j in cancelled_only}
        assert all(j.state == jobs_pb2.JOB_STATE_CANCELLED for j in cancelled_only)
        print(f"listed {len(listed)} jobs in {pages} pages; {len(cancelled_only)} cancelled")

        # Delete the ended jobs; they are gone.
        for job_id in sorted(ids):
            jobs.DeleteJob(jobs_pb2.DeleteJobRequest(job_id=job_id))
            try:
                jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
                raise AssertionError(f"{job_id} is still there after DeleteJob")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, error
        print(f"deleted {len(ids)} jobs")
    print("python client: every call behaved as documented")


if __name__ == "__main__":
    sys.exit(main())
