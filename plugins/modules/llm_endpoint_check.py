#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: llm_endpoint_check
short_description: Smoke-test a deployment of the llmops serving image and measure its latency
version_added: 0.1.0
description:
  - Waits until C(GET /readyz) answers 200, then checks that C(GET /v1/models) serves the model, that one
    C(POST /v1/completions) returns a well-formed completion within O(slo_seconds), that the same request
    without a key (and with a key nobody was given) is refused with 401 or 403, and that C(GET /metrics)
    serves Prometheus text with C(llmops_) metrics.
  - Fails when any check fails, with a message that names each failed check and what to look at; the
    figures and RV(checks) are returned with the failure too.
  - Changes nothing, so it runs its checks in check mode as well. It sends one short completion with the
    key, and two one-token requests that a correctly configured server refuses.
  - Works with any deployment of C(serving_image/) (Kubernetes Service or Ingress, the podman lab, a bare
    process); the deploy playbook and the DR drill use it.
  - Why this module exists; M(ansible.builtin.uri) can make each request, but not poll readiness with
    backoff, time a completion against an SLO, prove that auth is enforced and parse the metrics in one
    read-only step that returns figures.
author:
  - llmops.platform maintainers (@llmops)
attributes:
  check_mode:
    support: full
    description: The checks are read-only and run in check mode too.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  url:
    description: Base URL of the serving API, for example V(http://127.0.0.1:8080) or V(https://llm.example.com).
    type: str
    required: true
  api_key:
    description:
      - 'API key (or JWT) sent as C(Authorization: Bearer) on C(/v1/models) and the completion.'
      - Leave it out only for a server with auth disabled (which fails O(check_auth)).
    type: str
  model:
    description: Model id to complete with. Defaults to the first id of C(GET /v1/models); when set, it must be listed there.
    type: str
  prompt:
    description: Prompt of the timed completion.
    type: str
    default: Say hello
  max_tokens:
    description: C(max_tokens) of the timed completion.
    type: int
    default: 8
  slo_seconds:
    description: The completion, request sent to last byte read, must take at most this many seconds.
    type: float
    default: 10
  ready_timeout:
    description: Seconds to wait for C(GET /readyz) to answer 200, polling with capped exponential backoff (0.5 s to 10 s).
    type: float
    default: 300
  timeout:
    description: Seconds one HTTP request may take before it counts as no answer.
    type: float
    default: 30
  check_auth:
    description: Check that the completion route refuses a request without a key and one with an unknown key (401 or 403).
    type: bool
    default: true
  check_metrics:
    description: Check that C(GET /metrics) serves Prometheus text format with C(llmops_) metrics.
    type: bool
    default: true
  metrics_api_key:
    description:
      - Key for C(GET /metrics) when the server closes it (C(LLMOPS_METRICS_REQUIRE_AUTH=true)); use the key
        Prometheus scrapes with. Tried only after C(/metrics) refused a request without a key.
    type: str
  validate_certs:
    description: Verify the server's TLS certificate for an V(https) URL.
    type: bool
    default: true
  ca_path:
    description: PEM file of the CA that signed the server's certificate (a private CA, the lab's ingress).
    type: path
seealso:
  - name: serving_image README
    description: Routes, auth and metrics of the server this module checks.
    link: https://github.com/llmops/platform/blob/main/serving_image/README.md
"""

EXAMPLES = r"""
- name: Smoke-test the local lab deployment
  llmops.platform.llm_endpoint_check:
    url: http://127.0.0.1:8080
    api_key: "{{ llm_serving_smoke_key }}"
  register: smoke

- name: Show the figures
  ansible.builtin.debug:
    msg: "ready after {{ smoke.ready_after_seconds }} s, completion {{ smoke.completion_latency_seconds }} s"

- name: Check a cluster ingress behind a private CA, metrics closed, tighter SLO
  llmops.platform.llm_endpoint_check:
    url: https://llm.prod.example.com
    api_key: "{{ vault_llm_smoke_key }}"
    metrics_api_key: "{{ vault_prometheus_scrape_key }}"
    ca_path: /etc/llmops/ca.pem
    slo_seconds: 2
    ready_timeout: 600
  delegate_to: localhost

- name: Measure without failing the play (DR drill)
  llmops.platform.llm_endpoint_check:
    url: "{{ standby_url }}"
    api_key: "{{ smoke_key }}"
  register: drill_check
  ignore_errors: true
"""

RETURN = r"""
url:
  description: The base URL that was checked (without a trailing slash).
  returned: always
  type: str
  sample: http://127.0.0.1:8080
model:
  description: The model the completion used.
  returned: always
  type: str
  sample: tiny-llama
ready_after_seconds:
  description: Seconds until C(GET /readyz) answered 200; null when it did not within O(ready_timeout).
  returned: always
  type: float
  sample: 0.004
completion_latency_seconds:
  description: Wall time of the completion request, request sent to last byte read; null when it failed.
  returned: always
  type: float
  sample: 0.0813
completion_tokens:
  description: C(usage.completion_tokens) of the completion; null when it failed.
  returned: always
  type: int
  sample: 8
auth_enforced:
  description: Whether requests without a key and with an unknown key were refused; null when O(check_auth=false) or not ready.
  returned: always
  type: bool
  sample: true
metrics_reachable:
  description: Whether C(/metrics) served C(llmops_) metrics; null when O(check_metrics=false) or not ready.
  returned: always
  type: bool
  sample: true
checks:
  description: Every check that ran, in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: V(readiness), V(models), V(completion), V(slo), V(auth) or V(metrics).
      type: str
      sample: completion
    ok:
      description: Whether it passed.
      type: bool
      sample: true
    detail:
      description: What was seen; for a failure, also what to look at.
      type: str
      sample: 8 tokens in 0.081 s (finish_reason length)
failed_checks:
  description: Names of the checks that failed (empty on success).
  returned: always
  type: list
  elements: str
  sample: []
"""


from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.endpoint_check import EndpointCheck

ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True),
    api_key=dict(type="str", no_log=True),
    model=dict(type="str"),
    prompt=dict(type="str", default="Say hello"),
    # A token count, not a secret (validate-modules flags the word "token").
    max_tokens=dict(type="int", default=8, no_log=False),
    slo_seconds=dict(type="float", default=10),
    ready_timeout=dict(type="float", default=300),
    timeout=dict(type="float", default=30),
    check_auth=dict(type="bool", default=True),
    check_metrics=dict(type="bool", default=True),
    metrics_api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
)


def run(module):
    params = module.params
    check = EndpointCheck(
        params["url"], api_key=params["api_key"], model=params["model"], prompt=params["prompt"],
        max_tokens=params["max_tokens"], slo_seconds=params["slo_seconds"], ready_timeout=params["ready_timeout"],
        check_auth=params["check_auth"], check_metrics=params["check_metrics"],
        metrics_api_key=params["metrics_api_key"], validate_certs=params["validate_certs"],
        ca_path=params["ca_path"], timeout=params["timeout"])
    result = check.run()
    result["changed"] = False
    message = check.failure_message(result)
    if message:
        # The figures and checks go back with the failure: a DR drill records them even when it fails.
        module.fail_json(msg=message, **result)
    return result


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
