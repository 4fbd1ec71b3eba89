"""Who writes an Application Load Balancer's access logs, by region: a fact table from AWS's documentation.

Elastic Load Balancing User Guide for Application Load Balancers, "Enable access logs for your Application
Load Balancer", step 2: in each region available before August 2022 the bucket policy names that region's
Elastic Load Balancing account (`arn:<partition>:iam::<elb-account-id>:root`); in every newer region it names
the service principal `logdelivery.elasticloadbalancing.amazonaws.com`, with no condition in AWS's example.
"""

from __future__ import annotations

LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"

# Regions available before August 2022 -> that region's Elastic Load Balancing account.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378",
    "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-south-1": "635631232127",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
    "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993",
    "cn-northwest-1": "037604701340",
}


def alb_log_writer(region: str, partition: str) -> tuple[str, str]:
    """(principal type, identifier) that delivers ALB access logs in `region`."""
    account = ELB_LOG_ACCOUNTS.get(region)
    if account:
        return "AWS", f"arn:{partition}:iam::{account}:root"
    return "Service", LOG_DELIVERY_SERVICE
