"""What the pairs after the first share in one invocation: parameters, the servers' spec
(broker prefix, log directory), the benchmark database, the secrets, the RSS recorder."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import roles
from bench.config import SECRET_ENV, Params
from bench.database import Database
from bench.rss import Recorder
from bench.servers import ServerSpec


@dataclass(frozen=True, slots=True)
class Context:
    params: Params
    spec: ServerSpec
    db: Database
    secrets: Mapping[str, str]
    recorder: Recorder

    def config(self, name: str, extra: str = "", status_url: str | None = None) -> Path:
        """A paysync configuration file for a role child, in the private log directory."""
        return roles.write_config(
            self.spec.log_dir / f"{name}.toml",
            database_url=self.db.url,
            prefix=self.spec.prefix,
            amqp_url=self.spec.amqp_url,
            log_level=self.spec.log_level,
            extra=extra,
            status_url=status_url,
        )


def new_secrets(ccpayment_secret: str) -> dict[str, str]:
    """Environment variable → value, for every secret the role configurations reference."""
    return {
        SECRET_ENV: ccpayment_secret,
        roles.HDFC_PASSWORD_ENV: secrets.token_hex(12),
        roles.HDFC_API_KEY_ENV: secrets.token_hex(12).upper(),
    }
