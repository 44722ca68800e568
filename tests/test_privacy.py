import logging

import pytest

from assistant.privacy import PiiMaskingFilter, contains_pii, mask_pii


@pytest.mark.parametrize("text,secret,kept", [
    ("我的身份证是310229199001011234", "310229199001011234", "310"),
    ("身份证号31022919900101123X，帮我查一下", "31022919900101123X", "3X"),
    ("老身份证310229900101123", "310229900101123", "310"),
    ("电话13812345678", "13812345678", "138****5678"),
    ("打我手机 +86 138-1234-5678 谢谢", "1234-5678", "138****5678"),
    ("卡号6222 0212 3456 7890 128", "0212 3456 7890", "6222"),
    ("银行卡6217000010001234567", "6217000010001234567", "4567"),
])
def test_personal_numbers_are_masked(text, secret, kept):
    masked = mask_pii(text)
    assert secret not in masked and kept in masked and contains_pii(text)


@pytest.mark.parametrize("text", [
    "2020年4月28日印发，新增零跑动业务情形100项，办结率60%",
    "开办企业2个环节2天，工程建设5个环节23天",
    "咨询电话12345，医保热线962218",
    "",
])
def test_ordinary_numbers_are_left_alone(text):
    assert mask_pii(text) == text and not contains_pii(text)


def test_logging_filter_masks_messages_and_args(caplog):
    logger = logging.getLogger("pii-test")
    logger.addFilter(PiiMaskingFilter())
    with caplog.at_level(logging.INFO, logger="pii-test"):
        logger.info("user said %s", "手机13812345678 身份证310229199001011234")
    assert "13812345678" not in caplog.text and "310229199001011234" not in caplog.text
    assert "138****5678" in caplog.text
