from tests.support.telephony import fake_twilio, tel, tel_server

__all__ = ["fake_twilio", "tel", "tel_server"]
