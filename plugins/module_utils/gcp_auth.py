# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google credentials, one copy for the gcp provider and the GCS object store.

Order: a bearer token obtained elsewhere (access_token), a service account key file, then google-auth's
default chain (GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default login, the GCE/GKE metadata
server). Each caller names its own fields (provider_options.* or store.*) in the errors, so a user is
told which setting to fix.

The google-auth and requests imports are guarded here once; callers check HAS_GOOGLE_AUTH (through
authorized_session) and reuse `requests`, `GoogleAuthError` and `RefreshError` from this module for their error handling.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import google.auth
    import google.auth.exceptions
    from google.auth.exceptions import GoogleAuthError, RefreshError
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import credentials as oauth2_credentials
    from google.oauth2 import service_account
    import requests
    HAS_GOOGLE_AUTH = True
except ImportError:  # pragma: no cover - exercised only where google-auth is missing
    HAS_GOOGLE_AUTH = False
    requests = None

    # Stand-ins for google-auth's, so that `except RefreshError` stays valid without it.
    class GoogleAuthError(Exception):
        pass

    class RefreshError(GoogleAuthError):
        pass

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError

# GoogleAuthError, RefreshError and requests are re-exported: the callers' error handling uses them.
__all__ = ["HAS_GOOGLE_AUTH", "INSTALL_HINT", "GoogleAuthError", "RefreshError", "authorized_session",
           "google_credentials", "requests"]

INSTALL_HINT = "pip install google-auth requests (see requirements/controller.txt)"


def google_credentials(scopes, access_token=None, service_account_file=None, file_field="provider_options",
                       file_hint=None, no_credentials=None):
    """google-auth credentials for `scopes`.

    `file_field` is where service_account_file was set (e.g. "store"); a key file that does not load is a
    SpecError naming `<file_field>.service_account_file` with `file_hint`. `no_credentials` is the
    SpecError raised when the default chain finds nothing (it names the caller's fields).
    """
    if access_token:
        return oauth2_credentials.Credentials(token=access_token)
    if service_account_file:
        try:
            return service_account.Credentials.from_service_account_file(service_account_file, scopes=scopes)
        except (IOError, OSError, ValueError) as exc:
            raise SpecError("%s.service_account_file" % file_field, "cannot load %s: %s" % (service_account_file, exc),
                            hint=file_hint or "point it at a service account key (JSON) file")
    try:
        credentials, dummy = google.auth.default(scopes=scopes)
    except google.auth.exceptions.DefaultCredentialsError:
        raise no_credentials or SpecError(file_field, "no Google credentials were found",
                                          hint="set service_account_file or GOOGLE_APPLICATION_CREDENTIALS")
    return credentials


def authorized_session(what, credentials_factory):
    """An AuthorizedSession (requests) over the credentials `credentials_factory()` returns; `what` names
    the user of google-auth in the error raised when it is not installed."""
    if not HAS_GOOGLE_AUTH:
        raise ProviderError("%s needs google-auth and requests" % what, hint=INSTALL_HINT)
    return AuthorizedSession(credentials_factory())
