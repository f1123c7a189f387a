"""The Settings dialog: API key (OS keyring only), Test connection, model, voice, instructions, endpoint,
audio devices, echo cancellation and the voice gate, the global shortcut, saving the conversation and reconnect
delays."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ava_tray import keystore
from ava_tray.audio.echo import AUDIO_MODE_LABELS
from ava_tray.hotkey import MODE_LABELS as SHORTCUT_MODE_LABELS
from ava_tray.realtime.models import MODELS, REASONING_EFFORTS
from ava_tray.realtime.providers import PROVIDER_LABELS, ProviderError, provider_for
from ava_tray.settings import AUDIO_MODES, VOICES, Settings
from ava_tray.tools.mcp.host import McpHost
from ava_tray.ui.connection_check import ConnectionCheck, check_connection
from ava_tray.ui.mcp_page import McpPage

logger = logging.getLogger(__name__)

WINDOW_TITLE = "AVA · Settings"
SYSTEM_DEFAULT = "System default"
LOOKING_FOR_DEVICES = "Looking for audio devices…"

DeviceLister = Callable[[], tuple[list[str], list[str]]]


def _default_devices() -> tuple[list[str], list[str]]:
    try:
        from ava_tray.audio.devices import list_devices
    except Exception as exc:  # PortAudio missing: the pickers offer only the system default
        logger.warning("cannot list audio devices: %s", exc)
        return [], []
    return list_devices()


def _form(*rows: tuple[str, QWidget]) -> QWidget:
    """A page of labelled fields for one tab."""
    page = QWidget()
    form = QFormLayout(page)
    for label, field in rows:
        form.addRow(label, field)
    return page


class _DeviceListing(QObject):
    """Lists the audio devices on a thread of its own; `found(inputs, outputs)` arrives on the GUI thread."""

    found = Signal(list, list)

    def __init__(self, lister: DeviceLister) -> None:
        super().__init__()
        self._lister = lister

    def start(self) -> None:
        threading.Thread(target=self._run, name="ava-list-devices", daemon=True).start()

    def _run(self) -> None:
        try:
            inputs, outputs = self._lister()
        except Exception as exc:  # a listing that fails leaves the pickers on the system default
            logger.warning("cannot list audio devices: %s", exc)
            inputs, outputs = [], []
        with contextlib.suppress(RuntimeError):  # the dialog closed meanwhile
            self.found.emit(list(inputs), list(outputs))


class SettingsDialog(QDialog):
    """Edits `Settings`; `on_save(settings)` is called after the key (if any) went to the keyring."""

    def __init__(self, settings: Settings, *, on_save: Callable[[Settings], None],
                 on_demo: Callable[[], None] | None = None, warning: str | None = None,
                 first_run: bool = False, list_devices: DeviceLister | None = None,
                 mcp: McpHost | None = None, shortcut_state: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._on_save = on_save
        self._on_demo = on_demo
        self._check_task: asyncio.Future[ConnectionCheck] | None = None
        self.setWindowTitle(WINDOW_TITLE)
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)

        self.warning_label = QLabel(warning or "", self)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #b35c00;")
        self.warning_label.setVisible(bool(warning))
        layout.addWidget(self.warning_label)
        if first_run:
            welcome = QLabel("Welcome to AVA. Paste your OpenAI API key to start, or try the demo first: it "
                             "runs AVA on a built-in simulator, no key needed.", self)
            welcome.setWordWrap(True)
            layout.addWidget(welcome)

        # -- the key ---------------------------------------------------------------------------------
        key_box = QGroupBox("API key (OpenAI, or your Azure resource's)", self)
        key_layout = QVBoxLayout(key_box)
        self.key_location = QLabel(key_box)
        self.key_location.setWordWrap(True)
        self.key_edit = QLineEdit(key_box)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("sk-…")
        self.replace_key_button = QPushButton("Replace…", key_box)
        self.remove_key_button = QPushButton("Remove", key_box)
        self.test_button = QPushButton("Test connection", key_box)
        self.test_result = QLabel(key_box)
        self.test_result.setWordWrap(True)
        self.replace_key_button.clicked.connect(self._start_replacing)
        self.remove_key_button.clicked.connect(self.remove_key)
        self.test_button.clicked.connect(self.start_connection_test)
        key_buttons = QHBoxLayout()
        key_buttons.addWidget(self.replace_key_button)
        key_buttons.addWidget(self.remove_key_button)
        key_buttons.addStretch(1)
        key_buttons.addWidget(self.test_button)
        key_layout.addWidget(self.key_location)
        key_layout.addWidget(self.key_edit)
        key_layout.addLayout(key_buttons)
        key_layout.addWidget(self.test_result)
        layout.addWidget(key_box)

        # -- the session -----------------------------------------------------------------------------
        self.model_box = QComboBox(self)
        self.model_box.setEditable(True)  # an Azure deployment has a name of its own
        for model in MODELS:
            self.model_box.addItem(model.name)
            self.model_box.setItemData(self.model_box.count() - 1, model.label, Qt.ItemDataRole.ToolTipRole)
        self.model_box.setCurrentText(settings.model)
        self.model_box.setToolTip("The Realtime model; for Azure OpenAI, the name of your deployment.")
        self.reasoning_box = QComboBox(self)
        self.reasoning_box.addItems(list(REASONING_EFFORTS))
        self.reasoning_box.setCurrentText(settings.reasoning_effort)
        self.reasoning_box.setToolTip("How much a reasoning model (2 and 2.1) thinks before it speaks; time to "
                                      "first audio roughly doubles at high. Other models ignore it.")
        self.provider_box = QComboBox(self)
        self.provider_box.addItem("Automatic (from the URL)", "automatic")
        for provider, label in PROVIDER_LABELS.items():
            self.provider_box.addItem(label, provider.value)
        self.provider_box.setCurrentIndex(max(0, self.provider_box.findData(settings.provider)))
        self.budget_box = QDoubleSpinBox(self)
        self.budget_box.setRange(0.0, 10_000.0)
        self.budget_box.setDecimals(2)
        self.budget_box.setPrefix("$ ")
        self.budget_box.setSpecialValueText("No daily budget")
        self.budget_box.setValue(settings.daily_budget)
        self.budget_box.setToolTip("At 80 % AVA tells you; at 100 % it pauses until tomorrow (or until you go on).")
        self.context_box = QSpinBox(self)
        self.context_box.setRange(0, 1_000_000)
        self.context_box.setSingleStep(1000)
        self.context_box.setSpecialValueText("The model's own limit")
        self.context_box.setSuffix(" tokens")
        self.context_box.setValue(settings.context_limit_tokens)
        self.context_box.setToolTip("A long day's conversation is trimmed to this many tokens after the "
                                    "instructions, so every turn's cost stays bounded.")
        self.prices_edit = QPlainTextEdit(settings.prices, self)
        self.prices_edit.setFixedHeight(60)
        self.prices_edit.setPlaceholderText('Only for Azure or custom prices, USD per million tokens: '
                                            '{"my-deployment": {"audio_in": 32, "audio_out": 64}}')
        self.voice_box = QComboBox(self)
        self.voice_box.addItems(list(VOICES))
        self.voice_box.setCurrentText(settings.voice if settings.voice in VOICES else VOICES[0])
        self.instructions_edit = QPlainTextEdit(settings.instructions, self)
        self.instructions_edit.setFixedHeight(90)
        self.url_edit = QLineEdit(settings.realtime_url, self)
        # Listing devices can take seconds (a helper process while AVA's audio is open): it runs on a
        # thread of its own and fills the pickers when done; until then they offer the saved choice.
        self.input_box = QComboBox(self)
        self.output_box = QComboBox(self)
        self.devices_listed = False
        self._fill_device_box(self.input_box, None, settings.input_device)
        self._fill_device_box(self.output_box, None, settings.output_device)
        self._device_listing = _DeviceListing(list_devices or _default_devices)
        self._device_listing.found.connect(self._devices_found)
        self._device_listing.start()
        self.audio_mode_box = QComboBox(self)
        for mode in AUDIO_MODES:
            self.audio_mode_box.addItem(AUDIO_MODE_LABELS[mode], mode)
        self.audio_mode_box.setCurrentIndex(max(0, self.audio_mode_box.findData(settings.audio_mode)))
        self.audio_mode_box.setToolTip("Echo cancellation keeps AVA from hearing (and interrupting) itself "
                                       "on speakers; automatic turns it off for headsets and Bluetooth.")
        self.gate_box = QComboBox(self)
        self.gate_box.addItem("Only while someone speaks", True)
        self.gate_box.addItem("Always (stream continuously)", False)
        self.gate_box.setCurrentIndex(0 if settings.voice_gate else 1)
        self.gate_box.setToolTip("A speech detector on this computer decides when the microphone's audio is sent: "
                                 "silence and room noise stay here.")
        self.sensitivity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.sensitivity_slider.setRange(0, 100)
        self.sensitivity_slider.setValue(round(settings.gate_sensitivity * 100))
        self.sensitivity_slider.setToolTip("Strict: only clear speech opens the microphone. Eager: quiet or distant "
                                           "voices do too (and more noise slips through).")
        sensitivity = QWidget(self)
        sensitivity_row = QHBoxLayout(sensitivity)
        sensitivity_row.setContentsMargins(0, 0, 0, 0)
        sensitivity_row.addWidget(QLabel("Strict", sensitivity))
        sensitivity_row.addWidget(self.sensitivity_slider, 1)
        sensitivity_row.addWidget(QLabel("Eager", sensitivity))
        self.gate_box.currentIndexChanged.connect(
            lambda _: self.sensitivity_slider.setEnabled(bool(self.gate_box.currentData())))
        self.sensitivity_slider.setEnabled(settings.voice_gate)
        self.delay_expired = self._delay_box(settings.delay_session_expired)
        self.delay_lost = self._delay_box(settings.delay_connection_lost)
        self.delay_other = self._delay_box(settings.delay_other)
        self.save_conversation_box = QCheckBox("Keep it on disk, a file per day (the Conversation window then "
                                               "shows earlier days)", self)
        self.save_conversation_box.setChecked(settings.save_transcript)
        # The global shortcut: one key with its modifiers, as Qt writes it ("Ctrl+Alt+A").
        self.shortcut_edit = QKeySequenceEdit(QKeySequence.fromString(settings.shortcut,
                                                                      QKeySequence.SequenceFormat.PortableText), self)
        self.shortcut_edit.setMaximumSequenceLength(1)
        self.shortcut_edit.setClearButtonEnabled(True)
        self.shortcut_edit.setToolTip("Press the keys; clear it for no shortcut.")
        self.shortcut_mode_box = QComboBox(self)
        for mode, label in SHORTCUT_MODE_LABELS.items():
            self.shortcut_mode_box.addItem(label, mode)
        self.shortcut_mode_box.setCurrentIndex(max(0, self.shortcut_mode_box.findData(settings.shortcut_mode)))
        self.shortcut_state_label = QLabel(shortcut_state or "", self)
        self.shortcut_state_label.setWordWrap(True)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(_form(("Model:", self.model_box), ("Reasoning effort:", self.reasoning_box),
                               ("Voice:", self.voice_box), ("Instructions:", self.instructions_edit),
                               ("Endpoint URL:", self.url_edit), ("Provider:", self.provider_box),
                               ("Conversation:", self.save_conversation_box)), "Session")
        self.tabs.addTab(_form(("Microphone:", self.input_box), ("Speaker:", self.output_box),
                               ("Audio:", self.audio_mode_box), ("Send the microphone:", self.gate_box),
                               ("Voice gate sensitivity:", sensitivity)), "Audio")
        self.tabs.addTab(_form(("Global shortcut:", self.shortcut_edit), ("It:", self.shortcut_mode_box),
                               ("Now:", self.shortcut_state_label)), "Shortcut")
        self.tabs.addTab(_form(("Daily budget:", self.budget_box), ("Context limit:", self.context_box),
                               ("Prices:", self.prices_edit)), "Cost")
        self.tabs.addTab(_form(("Reconnect after expiry:", self.delay_expired),
                               ("Reconnect after a drop:", self.delay_lost),
                               ("Reconnect after other errors:", self.delay_other)), "Reconnect")
        self.mcp_page: McpPage | None = None
        self._unsubscribe_mcp: Callable[[], None] | None = None
        if mcp is not None:  # the MCP servers of mcp.json: their state and tools, and the file to edit
            self.mcp_page = McpPage(mcp.config_path, refresh=mcp.status)
            self.mcp_page.show_status(mcp.status())
            self._unsubscribe_mcp = mcp.subscribe(self.mcp_page.show_status)
            self.finished.connect(lambda _result: self._stop_following_mcp())
            self.tabs.addTab(self.mcp_page, "Tools")
        layout.addWidget(self.tabs)

        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)

        buttons = QHBoxLayout()
        self.demo_button = QPushButton("Try the demo", self)
        self.demo_button.setVisible(first_run and on_demo is not None)
        self.demo_button.clicked.connect(self._try_demo)
        self.save_button = QPushButton("Save", self)
        self.save_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.reject)
        buttons.addWidget(self.demo_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        self.refresh_key_location()

    @staticmethod
    def _fill_device_box(box: QComboBox, names: list[str] | None, current: str) -> None:
        """The system default, the devices present (None: still looking) and the current choice."""
        box.clear()
        box.addItem(SYSTEM_DEFAULT, "")
        for name in names or []:
            box.addItem(name, name)
        if current and (names is None or current not in names):
            box.addItem(current if names is None else f"{current} (not found)", current)
        if names is None:
            box.setToolTip(LOOKING_FOR_DEVICES)
        else:
            box.setToolTip("")
        box.setCurrentIndex(max(0, box.findData(current)))

    def _devices_found(self, inputs: list[str], outputs: list[str]) -> None:
        """The listing thread finished: show what it found, keeping any choice made meanwhile."""
        self._fill_device_box(self.input_box, inputs, str(self.input_box.currentData() or ""))
        self._fill_device_box(self.output_box, outputs, str(self.output_box.currentData() or ""))
        self.devices_listed = True

    def _delay_box(self, value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setRange(0.0, 300.0)
        box.setDecimals(1)
        box.setSuffix(" s")
        box.setValue(value)
        return box

    # -- the key -----------------------------------------------------------------------------------

    def refresh_key_location(self) -> None:
        """Say where the key is (never the key itself); a keyring problem is shown as its sentence."""
        self.has_stored_key = False
        try:
            self.has_stored_key = keystore.has_stored_key(self._key_provider())
        except keystore.KeyStoreError as exc:
            self.key_location.setText(str(exc))
            self.remove_key_button.setEnabled(False)
            self.replace_key_button.setEnabled(False)
            self.key_edit.setVisible(True)
            return
        if self.has_stored_key:
            text = f"A key is stored in {keystore.describe_location()}."
        else:
            text = "No key is stored yet: paste it here, it is kept in the OS keyring only."
        if os.environ.get("OPENAI_API_KEY", "").strip():
            text += " Note: OPENAI_API_KEY is set in the environment and is used instead."
        self.key_location.setText(text)
        self.remove_key_button.setEnabled(self.has_stored_key)
        self.replace_key_button.setEnabled(self.has_stored_key)
        self.key_edit.setVisible(not self.has_stored_key or bool(self.key_edit.text()))

    def _start_replacing(self) -> None:
        self.key_edit.setVisible(True)
        self.key_edit.setPlaceholderText("Paste the new key; it replaces the stored one on Save")
        self.key_edit.setFocus()

    def remove_key(self) -> None:
        """Remove the stored key from the keyring."""
        try:
            keystore.forget_key(self._key_provider())
        except keystore.KeyStoreError as exc:
            self.show_error(str(exc))
            return
        self.refresh_key_location()

    def _key_provider(self) -> str:
        """Whose key the key field holds: an Azure resource's key has an entry of its own."""
        chosen = str(self.provider_box.currentData() or "automatic")
        try:
            return provider_for(self.url_edit.text(), chosen).value
        except ProviderError:
            return provider_for(self.url_edit.text(), chosen, env={}).value

    def _key_for_test(self) -> str | None:
        entered = self.key_edit.text().strip()
        if entered:
            return entered
        return keystore.resolve_key(self._key_provider())

    # -- test connection ---------------------------------------------------------------------------

    def start_connection_test(self) -> None:
        """Run one handshake with the entered (or stored) key on the loop; the result shows below."""
        if self._check_task is not None and not self._check_task.done():
            return
        try:
            key = self._key_for_test()
        except keystore.KeyStoreError as exc:
            self.test_result.setText(str(exc))
            return
        self.test_button.setEnabled(False)
        self.test_result.setText("Testing…")
        self._check_task = asyncio.ensure_future(check_connection(self.url_edit.text().strip(), key))
        self._check_task.add_done_callback(self._connection_tested)

    def _connection_tested(self, task: asyncio.Future[ConnectionCheck]) -> None:
        self.test_button.setEnabled(True)
        if task.cancelled():
            return
        error = task.exception()
        result = task.result() if error is None else ConnectionCheck(False, f"The test failed: {error}")
        self.test_result.setText(("✔ " if result.ok else "✘ ") + result.message)

    # -- saving ------------------------------------------------------------------------------------

    def edited_settings(self) -> Settings:
        """The settings as the form now shows them."""
        return replace(
            self.settings,
            model=self.model_box.currentText().strip() or self.settings.model,
            voice=self.voice_box.currentText(),
            instructions=self.instructions_edit.toPlainText(),
            realtime_url=self.url_edit.text().strip(),
            input_device=str(self.input_box.currentData() or ""),
            output_device=str(self.output_box.currentData() or ""),
            audio_mode=str(self.audio_mode_box.currentData() or "automatic"),
            voice_gate=bool(self.gate_box.currentData()),
            gate_sensitivity=self.sensitivity_slider.value() / 100,
            delay_session_expired=self.delay_expired.value(),
            delay_connection_lost=self.delay_lost.value(),
            delay_other=self.delay_other.value(),
            reasoning_effort=self.reasoning_box.currentText(),
            provider=str(self.provider_box.currentData() or "automatic"),
            daily_budget=self.budget_box.value(),
            context_limit_tokens=self.context_box.value(),
            prices=self.prices_edit.toPlainText().strip(),
            save_transcript=self.save_conversation_box.isChecked(),
            shortcut=self.shortcut_edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText),
            shortcut_mode=str(self.shortcut_mode_box.currentData() or "toggle"),
        )

    def show_shortcut_state(self, text: str) -> None:
        """How the global shortcut stands now (bound, taken by another program, not available here)."""
        self.shortcut_state_label.setText(text)

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def save(self) -> bool:
        """Validate, store a new key in the keyring, hand the settings over; False (and a message) if not."""
        settings = self.edited_settings()
        problems = settings.problems()
        if problems:
            self.show_error(" ".join(problems))
            return False
        key = self.key_edit.text().strip()
        if key:
            try:
                keystore.save_key(key, self._key_provider())
            except keystore.KeyStoreError as exc:
                self.show_error(str(exc))
                return False
            self.key_edit.clear()
        try:
            self._on_save(settings)
        except (OSError, ValueError) as exc:
            self.show_error(str(exc))
            return False
        self.settings = settings
        self.show_error("")
        self.refresh_key_location()
        self.accept()
        return True

    def _try_demo(self) -> None:
        if self._on_demo is not None:
            self._on_demo()
        self.accept()

    def _stop_following_mcp(self) -> None:
        if self._unsubscribe_mcp is not None:
            self._unsubscribe_mcp()
            self._unsubscribe_mcp = None

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._check_task is not None:
            self._check_task.cancel()
        self._stop_following_mcp()
        super().closeEvent(event)
