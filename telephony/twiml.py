"""What Twilio callers hear, built with the twilio library's TwiML classes from a call's route
and its inbox's voice settings: where a call goes, the keypad menu, the closed-hours message, the
recording notice, and the queue's wait (position, callback offer, hold music). Japanese is spoken
with ``<Say language="ja-JP">``; an uploaded recording's URL, where one is set, is played instead.
"""

from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from helpdesk.calls import operators as call_operators
from helpdesk.calls.models import CallState, Routed
from helpdesk.calls.service import Ringing
from helpdesk.calls.settings_models import VoiceConfig
from helpdesk.config import Settings
from telephony.twilio_request import url_of

JA = "ja-JP"
CLOSED = "お電話ありがとうございます。ただいま営業時間外です。発信音のあとにご用件をお話しください。"
RECORDING = "品質向上のため、通話を録音させていただきます。"
BUSY = "ただいま電話が混み合っております。このままお待ちください。"
CALLBACK_OFFER = "折り返しをご希望の方は1を押してください。"
CALLBACK_TAKEN = "承知いたしました。担当者より折り返しお電話いたします。お電話ありがとうございました。"
HOLD = "担当者におつなぎしています。少々お待ちください。"
MENU_SECONDS = 6
HOLD_PAUSE_SECONDS = 5


def speak(verb: TwiML, text: str, audio_url: str | None = None) -> None:
    """Play the recording if there is one, else say the text in Japanese (nothing when empty)."""
    if audio_url:
        verb.play(audio_url)
    elif text:
        verb.say(text, language=JA)


def menu(voice: VoiceConfig, *, action: str) -> VoiceResponse:
    """The greeting and keypad menu; pressing nothing goes on to ``action`` without digits."""
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=action, timeout=MENU_SECONDS)
    speak(gather, voice.greeting, voice.greeting_audio_url)
    prompt = "、".join(f"{option.label}は{option.digit}" for option in voice.menu)
    gather.say(f"{prompt}を押してください。", language=JA)
    response.redirect(action)
    return response


def closed(response: VoiceResponse, voice: VoiceConfig) -> None:
    """The closed-hours message before the voicemail's beep."""
    speak(response, voice.closed_message or CLOSED, voice.closed_audio_url)


def recording_notice(response: VoiceResponse, voice: VoiceConfig) -> None:
    """Tell the caller the call is recorded, when the inbox records calls."""
    if voice.record_calls:
        speak(response, voice.record_announcement or RECORDING)


def waiting(voice: VoiceConfig, *, first: bool, position: int | None, callback: str) -> VoiceResponse:
    """One round of a queued caller's wait: the notice (first round), their place in the queue,
    the callback offer, then hold music (or a short pause) before Twilio asks again."""
    response = VoiceResponse()
    if first:
        response.say(BUSY, language=JA)
    if voice.announce_position and position:
        response.say(f"現在{position}番目でお待ちいただいております。", language=JA)
    if voice.callback_offer:
        gather = response.gather(num_digits=1, action=callback, timeout=3)
        gather.say(CALLBACK_OFFER, language=JA)
    if voice.hold_music_url:
        response.play(voice.hold_music_url)
    else:
        response.pause(length=HOLD_PAUSE_SECONDS)
    return response


def callback_taken() -> VoiceResponse:
    """The caller's callback request is noted: thank them and hang up."""
    response = VoiceResponse()
    response.say(CALLBACK_TAKEN, language=JA)
    response.hangup()
    return response


def on_hold(voice: VoiceConfig) -> VoiceResponse:
    """Hold music (or a short notice and silence) while a call is being handed over."""
    response = VoiceResponse()
    if voice.hold_music_url:
        response.play(voice.hold_music_url)
    else:
        response.say(HOLD, language=JA)
        response.pause(length=HOLD_PAUSE_SECONDS * 2)
    return response


def inbound(ringing: Ringing, settings: Settings) -> VoiceResponse:
    """Where a new or re-offered call goes: rejected, voicemail, the menu, the free operators'
    browser phones, or the inbox's queue."""
    call, response, voice = ringing.call, VoiceResponse(), ringing.voice
    status_url = url_of(settings, "/telephony/twilio/status")
    if call.routed == Routed.rejected:
        response.reject(reason="busy")
    elif call.routed == Routed.voicemail:
        closed(response, voice)
        response.record(max_length=120, play_beep=True, recording_status_callback=status_url)
    elif call.routed == Routed.menu:
        return menu(voice, action=url_of(settings, "/telephony/twilio/menu"))
    elif call.routed == Routed.dial and call.offered_user_ids:
        recording_notice(response, voice)
        recording = ({"record": "record-from-answer-dual", "recording_status_callback": status_url}
                     if voice.record_calls else {})
        dial = response.dial(answer_on_bridge=True, timeout=settings.twilio_ring_timeout,
                             **recording)
        for user_id in call.offered_user_ids:
            dial.client(call_operators.client_identity(user_id), status_callback=status_url,
                        status_callback_event="answered")
    elif call.state == CallState.ringing:
        # The wait URL answers <Leave> once an operator is free; the caller then goes on to
        # the next verb, which offers the call to whoever is free at that moment.
        response.enqueue(ringing.inbox_name, wait_url=url_of(settings, "/telephony/twilio/wait"))
        response.redirect(url_of(settings, "/telephony/twilio/offer"))
    else:
        response.hangup()
    return response


def hang_up() -> VoiceResponse:
    """End the call (it is unknown, or over)."""
    response = VoiceResponse()
    response.hangup()
    return response
