"""Wires the services of one process around one store; built by entry points."""

from __future__ import annotations

from dataclasses import dataclass

from runyard.artifacts.blobs import ArtifactBlobs
from runyard.artifacts.links import ArtifactLinks
from runyard.secrets_box import SecretBox, load_key
from runyard.services.admission import Admission
from runyard.services.agents import AgentService
from runyard.services.canvas import CanvasService
from runyard.services.capabilities import CapabilityService
from runyard.services.keys import KeyService
from runyard.services.notify import RunSignals
from runyard.services.runs import RunService
from runyard.services.schedules import ScheduleService
from runyard.services.secrets import SecretService
from runyard.services.webhooks import WebhookService
from runyard.services.workspaces import WorkspaceService
from runyard.settings import Settings
from runyard.store.base import Store


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    signals: RunSignals
    keys: KeyService
    workspaces: WorkspaceService
    agents: AgentService
    runs: RunService
    admission: Admission
    secrets: SecretService
    capabilities: CapabilityService
    schedules: ScheduleService
    webhooks: WebhookService
    canvas: CanvasService

    @classmethod
    def build(cls, settings: Settings, store: Store) -> Services:
        signals = RunSignals()
        store.subscribe(signals.publish)
        keys = KeyService(store)
        secret_key = load_key(settings.secret_key, settings.data_dir)
        return cls(
            settings=settings,
            store=store,
            signals=signals,
            keys=keys,
            workspaces=WorkspaceService(store, keys),
            agents=AgentService(store),
            runs=RunService(store, settings, signals),
            admission=Admission(store, settings),
            secrets=SecretService(store, SecretBox(secret_key)),
            capabilities=CapabilityService(store),
            schedules=ScheduleService(store),
            webhooks=WebhookService(
                store, SecretBox(secret_key), allow_private=settings.webhook_allow_private
            ),
            canvas=CanvasService(
                store,
                ArtifactBlobs(settings.artifacts_dir),
                ArtifactLinks(secret_key, settings.artifact_link_seconds),
            ),
        )
