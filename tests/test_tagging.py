"""SPEC 4.6 tagging: provider default tags on every stack, enforced by an aspect that fails synthesis."""

from __future__ import annotations

import cdktf
import pytest

from core.aws import aws
from core.provider import required_tags
from core.tagging import RequiredTags
from tests.tag_checks import check_required_tags

REQUIRED = ("Environment", "Application", "CostCenter", "Owner", "ManagedBy", "Project")


def expected_tags(project, stack_name: str) -> dict[str, str]:
    if stack_name == "bootstrap" or stack_name in {baseline.stack_name for baseline in project.baselines}:
        return required_tags(environment="shared", application=project.application, owner=project.owner,
                             cost_center=project.cost_center)
    env = project.environment_of(stack_name)
    return required_tags(environment=env.name, application=env.application, owner=env.owner,
                         cost_center=env.cost_center)


def test_required_tag_names_are_the_spec_ones(project):
    assert set(expected_tags(project, "dev")) == set(REQUIRED)
    assert expected_tags(project, "dev")["ManagedBy"] == "cdktf"


def test_every_taggable_resource_in_every_stack_carries_the_required_tags(stacks, project):
    for name, stack in stacks.items():
        assert check_required_tags(stack, expected_tags(project, name)) > 0, name


def synth_with_aspect(build, outdir) -> None:
    """Synthesize into a temporary directory (absolute: jsii's Node process keeps its own working
    directory); cdktf raises on error annotations."""
    app = cdktf.App(outdir=str(outdir), stack_traces=False)
    stack = cdktf.TerraformStack(app, "tagging")
    build(stack)
    RequiredTags.enforce(stack, {"Environment": "dev", "Owner": "team"})
    app.synth()


def bucket(stack, **kwargs):
    return aws.s3_bucket.S3Bucket(stack, "bucket", bucket="tagging-test", **kwargs)


def test_aspect_fails_synthesis_for_a_resource_under_a_provider_without_default_tags(tmp_path):

    def build(stack):
        aws.provider.AwsProvider(stack, "aws", region="eu-west-1")
        bucket(stack)

    with pytest.raises(Exception, match=r"aws_s3_bucket tagging/bucket would lack the required tags "
                                        r"Environment=dev, Owner=team"):
        synth_with_aspect(build, tmp_path / "cdktf.out")


def test_aspect_fails_synthesis_when_a_resource_overrides_a_required_tag(tmp_path):

    def build(stack):
        aws.provider.AwsProvider(stack, "aws", region="eu-west-1", default_tags=[
            aws.provider.AwsProviderDefaultTags(tags={"Environment": "dev", "Owner": "team"})])
        bucket(stack, tags={"Environment": "production"})

    with pytest.raises(Exception, match=r"would lack the required tags Environment=dev"):
        synth_with_aspect(build, tmp_path / "cdktf.out")


def test_aspect_accepts_default_tags_and_ignores_untaggable_resources(tmp_path):

    def build(stack):
        aws.provider.AwsProvider(stack, "aws", region="eu-west-1", default_tags=[
            aws.provider.AwsProviderDefaultTags(tags={"Environment": "dev", "Owner": "team"})])
        created = bucket(stack, tags={"Purpose": "test"})
        versioning = aws.s3_bucket_versioning
        versioning.S3BucketVersioningA(stack, "versioning", bucket=created.id,
                                       versioning_configuration=versioning.S3BucketVersioningVersioningConfiguration(
                                           status="Enabled"))

    synth_with_aspect(build, tmp_path / "cdktf.out")


def test_aspect_checks_each_resource_against_its_own_provider(tmp_path):
    """With one provider untagged, the resources under the tagged provider still pass."""

    def build(stack):
        aws.provider.AwsProvider(stack, "aws", region="eu-west-1", default_tags=[
            aws.provider.AwsProviderDefaultTags(tags={"Environment": "dev", "Owner": "team"})])
        edge = aws.provider.AwsProvider(stack, "edge", region="us-east-1", alias="edge")
        bucket(stack)
        aws.s3_bucket.S3Bucket(stack, "edge-bucket", bucket="tagging-edge", provider=edge)

    with pytest.raises(Exception, match="tagging/edge-bucket would lack the required tags") as failure:
        synth_with_aspect(build, tmp_path / "cdktf.out")
    assert "aws_s3_bucket tagging/edge-bucket would lack the required tags Environment=dev, Owner=team" in str(
        failure.value)
    assert "tagging/bucket " not in str(failure.value)


def test_aspect_runs_once_per_stack_however_many_constructs_it_holds(tmp_path):
    """Each aspect call is a round trip from Node into Python; per construct it dominated synthesis."""
    visits = []

    class CountingRequiredTags(RequiredTags):
        def visit(self, node):
            visits.append(node.node.path)
            super().visit(node)

    app = cdktf.App(outdir=str(tmp_path / "cdktf.out"), stack_traces=False)
    stack = cdktf.TerraformStack(app, "tagging")
    aws.provider.AwsProvider(stack, "aws", region="eu-west-1", default_tags=[
        aws.provider.AwsProviderDefaultTags(tags={"Environment": "dev"})])
    for index in range(5):
        aws.s3_bucket.S3Bucket(stack, f"bucket-{index}", bucket=f"tagging-{index}")
    CountingRequiredTags.enforce(stack, {"Environment": "dev"})
    app.synth()

    assert visits == ["tagging/required-tags"]


@pytest.mark.parametrize("override", ["given", "setter", "raw override", "token value"])
def test_aspect_catches_an_override_however_it_was_made(tmp_path, override, monkeypatch):
    """Given tags are checked from Python's records without rendering the stack; a raw override and a token
    for a required key's value are not known there, so those stacks are rendered (and the override caught)."""
    rendered = []
    to_terraform = cdktf.TerraformStack.to_terraform
    monkeypatch.setattr(cdktf.TerraformStack, "to_terraform", lambda self: rendered.append(1) or to_terraform(self))

    def build(stack):
        aws.provider.AwsProvider(stack, "aws", region="eu-west-1", default_tags=[
            aws.provider.AwsProviderDefaultTags(tags={"Environment": "dev", "Owner": "team"})])
        created = bucket(stack, tags={"Environment": "production"} if override == "given" else {"Purpose": "x"})
        if override == "setter":
            created.tags = {"Owner": "someone"}
        elif override == "raw override":
            created.add_override("tags.Owner", "someone")
        elif override == "token value":
            created.tags = {"Owner": cdktf.Token.as_string(cdktf.Fn.lower("TEAM"))}

    with pytest.raises(Exception, match=r"tagging/bucket would lack the required tags (Environment=dev|Owner=team)"):
        synth_with_aspect(build, tmp_path / "cdktf.out")
    assert bool(rendered) == (override in ("raw override", "token value")), rendered


def test_aspect_checks_given_tags_without_rendering_the_stack(tmp_path, monkeypatch):
    rendered = []
    monkeypatch.setattr(cdktf.TerraformStack, "to_terraform", lambda self: rendered.append(1) or {})

    def build(stack):
        aws.provider.AwsProvider(stack, "aws", region="eu-west-1", default_tags=[
            aws.provider.AwsProviderDefaultTags(tags={"Environment": "dev", "Owner": "team"})])
        bucket(stack, tags={"Purpose": "test", "Owner": "team"})

    synth_with_aspect(build, tmp_path / "cdktf.out")
    assert rendered == []
