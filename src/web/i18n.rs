//! Words on the pages, Chinese first (the users are Chinese), English available. Keys are
//! English phrases (the English text itself); a missing Chinese entry would fall back to the
//! key, and a unit test makes sure none is missing.

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 简体中文 (default).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// From a cookie or config value; anything unknown is Chinese.
    pub fn parse(text: &str) -> Lang {
        if text == "en" {
            Lang::En
        } else {
            Lang::Zh
        }
    }

    /// `zh` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// Translates an English key.
    pub fn t(self, key: &'static str) -> &'static str {
        match self {
            Lang::En => key,
            Lang::Zh => zh(key).unwrap_or(key),
        }
    }
}

/// Every text of the pages: the English key (which is the English text) and its Chinese.
/// A unit test checks that every key the pages use is here, and every key here is used.
const TEXTS: &[(&str, &str)] = &[
    ("The agent cannot receive codes: check the legal representative", "经办人无法接收验证码？验证法定代表人身份"),
    ("Personal certificates: the phone on file changed", "个人证书：预留手机号已更换？"),
    ("The legal representative's phone", "法定代表人手机号验证"),
    ("The legal representative's bank card", "法定代表人银行卡验证"),
    ("Your phone, checked under your real name", "申请人手机号实名验证"),
    ("Your bank card", "申请人银行卡验证"),
    ("Credit code", "统一社会信用代码"),
    ("The phone the bank has for the card", "银行预留手机号"),
    ("Phone", "手机号"),
    ("The legal representative's ID number", "法定代表人身份证号"),
    ("Random code", "随机码"),
    ("Random code picture", "随机码图片"),
    ("If the details are right, a code was texted: enter it, with the details again.", "如信息无误，验证码已发送：请再次填写信息并输入短信验证码"),
    ("The random code was wrong; type the new one.", "随机码错误，请输入新显示的随机码"),
    ("Cloud certificates", "云证书网上办理"),
    ("New organisation certificate", "新办机构云证书"),
    ("New personal certificate", "新办个人云证书"),
    ("Renewal", "证书续期"),
    ("Information change", "信息变更"),
    ("Revocation", "证书吊销"),
    ("Re-issue", "证书补办"),
    ("PIN unlock", "PIN码解锁"),
    ("Seal add or change", "电子印章新增或变更"),
    ("Order management", "订单管理"),
    ("Application details", "申请信息"),
    ("Seal authorisation", "印章授权管理"),
    ("Help", "帮助中心"),
    ("About", "关于"),
    ("The cloud certificate service", "云证书服务"),
    ("This site", "本网站"),
    ("A certification authority (CA) issues the certificates applied for here. It checks who applies, keeps each certificate's key in its hardware security module and uses it only when the holder confirms with their PIN in the phone app.", "在本网站申请的证书由电子认证服务机构（CA）签发。CA核验申请人身份，在其硬件密码模块中生成并保管证书密钥，仅在持有人于手机App中输入PIN码确认后使用。"),
    ("The certificate's holder signs documents on partner platforms by scanning a QR code with the app.", "证书持有人在合作业务平台上用App扫描二维码即可签署文件。"),
    ("Contact", "联系我们"),
    ("Start", "开始办理"),
    ("Next", "下一步"),
    ("Send code", "发送验证码"),
    ("Cancel the order", "取消订单"),
    ("Before you start, have these ready", "办理前请准备以下材料"),
    ("Authorisation letter with the company stamp, when the agent is not the legal representative", "经办人非法定代表人时，需加盖公章的授权书（或由法定代表人在线授权）"),
    ("Order", "订单"),
    ("State", "状态"),
    ("Amount", "金额"),
    ("certificate", "证书"),
    ("verification", "验证方式"),
    ("company", "单位信息"),
    ("person", "个人信息"),
    ("subject-check", "身份核验"),
    ("agent", "经办人"),
    ("agent-check", "经办人核验"),
    ("product", "产品与发票"),
    ("materials", "上传材料"),
    ("signature", "申请签署"),
    ("payment", "支付"),
    ("open", "办理中"),
    ("offline", "线下办理（等待纸质材料）"),
    ("review", "审核中"),
    ("approved", "审核通过"),
    ("completed", "已办结"),
    ("rejected", "未通过"),
    ("cancelled", "已取消"),
    ("Company name", "单位名称"),
    ("Unified social credit code", "统一社会信用代码"),
    ("Legal representative", "法定代表人"),
    ("Name", "姓名"),
    ("ID number", "身份证号码"),
    ("Mobile phone", "手机号码"),
    ("E-mail", "电子邮箱"),
    ("Bank card number", "银行卡号"),
    ("Account name", "账户名称"),
    ("Account number", "银行账号"),
    ("Bank", "开户银行"),
    ("The legal representative applies in person", "法定代表人本人办理"),
    ("Agent's verification", "经办人核验方式"),
    ("Verification method", "验证方式"),
    ("bank-account", "对公账户打款验证"),
    ("phone", "手机号实名验证"),
    ("bank-card", "银行卡验证"),
    ("face-sms", "人脸识别（短信链接）"),
    ("face-qr", "人脸识别（现场扫码）"),
    ("Remittance code from the bank statement", "银行流水中的打款备注码"),
    ("A code was texted to the legal representative's phone", "验证码已发送至法定代表人手机"),
    ("Send the code again", "重新发送验证码"),
    ("Invoice title", "发票抬头"),
    ("An e-invoice is issued (title: the organisation or person).", "本渠道开具电子发票（抬头为申请单位或个人）。"),
    ("Tick the box to agree to the user agreement.", "请勾选同意用户协议。"),
    ("ID type", "证件类型"),
    ("Resident ID card", "居民身份证"),
    ("Passport", "护照"),
    ("Mainland travel permit for Hong Kong and Macao residents", "港澳居民来往内地通行证"),
    ("Mainland travel permit for Taiwan residents", "台湾居民来往大陆通行证"),
    ("Foreign permanent resident ID card", "外国人永久居留身份证"),
    ("The legal representative does not take part", "法定代表人不参与"),
    ("The legal representative takes part (on their own phone)", "法定代表人参与（在本人手机上完成）"),
    ("User agreement", "用户协议"),
    ("I have read and agree to the user agreement", "我已阅读并同意用户协议"),
    ("Delivery address", "收货地址"),
    ("Change the delivery address", "修改收货地址"),
    ("The delivery address was changed.", "收货地址已修改。"),
    ("Delivery address (a USB key is posted)", "收货地址（邮寄USB Key）"),
    ("A new seal", "新增印章（补章）"),
    ("Change the seal: ", "变更印章（变章）："),
    ("Seal", "印章"),
    ("Seal name", "印章名称"),
    ("Seal name (empty: as it is, or the organisation's name)", "印章名称（留空：沿用原名称或单位名称）"),
    ("Download the letter, print it, have it stamped and signed, then upload it", "下载授权委托书，打印后加盖公章并由法定代表人签字，再上传"),
    ("A link was sent by SMS; finish the face check on the phone, then continue.", "已发送短信链接，请在手机上完成人脸识别后继续。"),
    ("Scan this code with the phone to take the face check.", "请用手机扫描二维码完成人脸识别。"),
    ("I have finished", "我已完成"),
    ("Product", "产品"),
    ("I want an e-invoice (title: the organisation or person)", "需要电子发票（抬头为申请单位或个人）"),
    ("Invoice e-mail", "发票接收邮箱"),
    ("Upload", "上传"),
    ("Uploaded", "已上传"),
    ("Materials are complete", "材料已齐全"),
    ("Or let the legal representative authorise online", "或由法定代表人在线授权"),
    ("The legal representative gets a link by SMS, reads the authorisation letter on their own phone and signs it there with a code sent to that phone.", "法定代表人将收到短信链接，在本人手机上阅读授权委托书，并凭发送至该手机的验证码签署。"),
    ("Text the signing link to the legal representative", "把签署链接发送给法定代表人"),
    ("The link went to the legal representative's phone. This page continues once they sign.", "签署链接已发送至法定代表人手机，法定代表人签署后即可继续办理。"),
    ("Refresh: have they signed?", "刷新查看是否已签署"),
    ("The legal representative signed the authorisation letter online.", "法定代表人已在线签署授权委托书。"),
    ("Authorisation letter", "授权委托书"),
    ("Download the letter (PDF)", "下载授权委托书（PDF）"),
    ("Signed", "已签署"),
    ("The agent's application continues; you may close this page.", "经办人可继续办理申请，您可以关闭本页面。"),
    ("Agent", "经办人"),
    ("Agent's ID number", "经办人身份证号码"),
    ("Business", "业务类型"),
    ("Authorised until", "授权有效期至"),
    ("The code goes to", "验证码发送至"),
    ("Read the letter. To sign it, get a code on your phone and enter it below.", "请阅读授权委托书。如同意授权，请获取发送至本人手机的验证码并在下方输入后签署。"),
    ("This link works until", "本链接有效期至"),
    ("Send the code to my phone", "发送验证码到本人手机"),
    ("Sign the letter", "签署授权委托书"),
    ("The letter is already signed, or the application moved on.", "授权委托书已签署，或申请已进入下一环节。"),
    ("The code is wrong or expired; get a new one.", "验证码错误或已过期，请重新获取"),
    ("Terms", "服务协议"),
    ("I have read and accept the terms", "我已阅读并同意服务协议"),
    ("SMS code", "短信验证码"),
    ("Sign the application", "签署申请"),
    ("Pay with", "支付方式"),
    ("wechat", "微信支付"),
    ("alipay", "支付宝"),
    ("Show the payment code", "生成支付二维码"),
    ("Scan to pay. This page moves on by itself when the payment arrives.", "请扫码支付，支付完成后本页面将自动跳转。"),
    ("Certificate serial number", "证书序列号"),
    ("Revocation reason", "吊销原因"),
    ("The identity check failed.", "身份核验未通过。"),
    ("Correct the data above, or apply offline: print the form, sign and stamp it, and mail it with the papers.", "请修改上方信息，或改为线下办理：打印申请表，签字盖章后连同材料邮寄。"),
    ("Apply offline", "改为线下办理"),
    ("Print the application form", "打印申请表"),
    ("Download the invoice", "下载发票"),
    ("Send the invoice again", "重新发送发票"),
    ("Continue", "继续办理"),
    ("Details", "详情"),
    ("Find your orders", "查询订单"),
    ("Credit code or ID number", "统一社会信用代码或身份证号码"),
    ("The phone of an agent on file, or the legal representative's", "经办人或法定代表人的手机号码"),
    ("Show my orders", "查询"),
    ("Your orders", "您的订单"),
    ("No orders.", "没有订单。"),
    ("Log in with the agent's phone", "使用经办人手机号登录"),
    ("Log in", "登录"),
    ("Members", "成员"),
    ("Role", "角色"),
    ("staff", "员工"),
    ("seal-admin", "印章管理员"),
    ("admin", "证书管理员"),
    ("Add or change a member", "添加或调整成员"),
    ("Hand the administrator role over", "移交证书管理员"),
    ("Remove a member", "移除成员"),
    ("Remove", "移除"),
    ("Allow", "授权使用"),
    ("Withdraw", "撤销授权"),
    ("(retired)", "（已停用）"),
    ("Allowed to use this seal", "已授权使用该印章的人员"),
    ("nobody yet", "暂无"),
    ("Member's phone", "成员手机号"),
    ("Use of this seal", "印章使用授权"),
    ("This phone is not a member of the organisation: add it as a member first.", "该手机号不是本单位成员，请先添加为成员。"),
    ("The administrator cannot remove themself: hand the role over first.", "证书管理员不能移除自己，请先移交证书管理员角色。"),
    ("New administrator's phone", "新管理员手机号"),
    ("Seals", "电子印章"),
    ("Save", "保存"),
    ("Done. The approved certificate waits in the app: log in with the agent's phone, check your identity and set the certificate PIN.", "审核已通过。请在手机App中使用经办人手机号登录，完成身份核验并设置证书PIN码后即可获取证书。"),
    ("We are reviewing the application (3 to 5 working days). You will get an SMS and an e-mail.", "申请正在审核中（3至5个工作日），结果将以短信和邮件通知。"),
    ("Reason", "原因"),
    ("Mail the signed and stamped form with the papers; the review starts when they arrive.", "请将签字盖章的申请表连同材料邮寄，收到后开始审核。"),
    ("Offline: complete the steps above online first; the form then shows them.", "线下办理：请先在线完成以上步骤，申请表将包含这些信息。"),
    ("Something went wrong; try again.", "出现错误，请重试。"),
    ("Please correct the marked fields.", "请修改标出的内容。"),
    ("The page expired; please submit again.", "页面已过期，请重新提交。"),
    ("Customer service", "客服电话"),
    ("A code was sent if the phone is on file.", "验证码已发送（如该手机号在档）"),
    ("New administrator's name", "新管理员姓名"),
    ("New administrator's ID number", "新管理员身份证号码"),
    ("Accept an administrator role offered to you", "接受移交给您的管理员角色"),
    ("The administrator's phone who offered it", "移交人（原管理员）手机号码"),
    ("Accept", "接受"),
    (
        "Offered: the new administrator accepts with the code texted to them.",
        "已发起移交：新管理员凭发送至其手机的验证码接受",
    ),
    ("The code was sent.", "验证码已发送"),
    ("Check what you entered", "核对已填写的信息"),
    ("Confirm the application", "商品信息确认"),
    ("This page cannot be edited; go back to a step to correct it.", "确认页面无法编辑，如有问题请返回相应步骤修改。"),
    ("Change", "修改"),
    ("Yes", "是"),
    ("No", "否"),
    ("Invoice", "发票"),
    ("Correct this step; the steps after it are taken again.", "修改本步骤后，其后的步骤需重新办理。"),
    ("Back to the confirmation", "返回信息确认"),
    ("Subject", "证书主体"),
    ("Done.", "操作成功。"),
    ("The certificate this order is about", "本订单办理的证书（当前信息）"),
    ("Certificate services", "证书服务"),
    ("First check who you are; then choose the certificate from your list.", "请先完成身份核验，再从您的证书列表中选择要办理的证书。"),
    ("Enter the credit code (organisation) or ID number (person), then confirm with the code sent to a phone on file. Your certificates are listed next; no serial number is needed.", "请输入统一社会信用代码（机构）或身份证号码（个人），并填写发送至在档手机的验证码。核验通过后将列出您的证书，无需填写证书序列号。"),
    ("Show my certificates", "查询证书"),
    ("Your certificates", "您的证书"),
    ("No certificate of this subject can be managed with this check.", "通过本次核验，没有可办理业务的证书。"),
    ("Not the certificates you are looking for? Check another identity below.", "不是您要找的证书？请在下方重新核验身份。"),
    ("Check another identity", "重新核验身份"),
    ("Valid until", "有效期至"),
    ("Organisation certificate", "机构证书"),
    ("Personal certificate", "个人证书"),
    ("issued", "有效"),
    ("expired", "已过期"),
    ("revoked", "已吊销"),
    ("Revoked certificates take no service.", "已吊销的证书不能办理业务。"),
    ("Renewal opens on", "可续期日期："),
    ("Not available for this certificate with this check.", "本次核验不能为该证书办理此业务。"),
    ("Choose the certificate from the list of your certificates.", "请从您的证书列表中选择要办理的证书。"),
    ("Find my certificates", "查询我的证书"),
    ("Choose another certificate", "选择其他证书"),
    ("The code goes to the certificate's administrator or holder on file. When the legal representative chose the certificate and nobody can receive the code, leave it empty: an officer then checks the order.", "验证码将发送至该证书在档的证书管理员或持有人手机。如由法定代表人选择证书且无人能接收验证码，可不填写，订单将转人工审核。"),
    ("Certificate update information: the certificate's data is filled in; correct it if needed. It is checked again.", "证书更新信息：已按证书内容预先填写，如有变化请修改，提交后将重新核验。"),
    ("The certificate's data is filled in: enter what changed. Everything is checked again.", "已按证书内容预先填写，请修改发生变更的信息，提交后将重新核验。"),
    ("The certificate's data is filled in; it is checked again.", "已按证书内容预先填写，提交后将重新核验。"),
];

fn zh(key: &str) -> Option<&'static str> {
    TEXTS.iter().find(|(en, _)| *en == key).map(|(_, zh)| *zh)
}

/// A field error's message, from its stable code; the daemon's English message otherwise.
pub fn field_error(lang: Lang, code: &str, english: &str) -> String {
    if lang == Lang::En {
        return english.to_string();
    }
    match code {
        "credit_code.length" => "统一社会信用代码应为18位".into(),
        "credit_code.charset" => "统一社会信用代码含有无效字符（不使用I、O、Z、S、V）".into(),
        "credit_code.check_digit" => "统一社会信用代码校验位不正确，请检查是否输入有误".into(),
        "resident_id.length" => "身份证号码应为18位（17位数字加一位数字或X）".into(),
        "resident_id.birth_date" => "身份证号码中的出生日期无效".into(),
        "resident_id.check_digit" => "身份证号码校验位不正确，请检查是否输入有误".into(),
        "resident_id.region" => "身份证号码前两位不是有效的省级行政区代码".into(),
        "id_number.format" => "证件号码与所选证件类型的格式不符".into(),
        "id_number.resident_id" => "这是居民身份证号码，请选择居民身份证作为证件类型".into(),
        "id_type.credit_code" => "这是统一社会信用代码，请勿选择证件类型".into(),
        "id_type.resident_only" => {
            "经办人须使用居民身份证（经办人的在线核验依据居民身份证），或请更换持有居民身份证的经办人".into()
        }
        "mobile.invalid" => "请输入11位中国大陆手机号码".into(),
        "bank_card.format" | "bank_card.missing" => "请输入12至19位银行卡号".into(),
        "bank_card.check_digit" => "银行卡号校验不正确，请检查是否输入有误".into(),
        "email.invalid" | "email.missing" => "请输入有效的电子邮箱".into(),
        "name.empty" => "此项不能为空".into(),
        "name.too_long" => "内容过长".into(),
        "name.invalid" => "含有无效字符".into(),
        "material.missing" => "请上传此材料".into(),
        "invoice.free" => "该商品免费，无需开具发票".into(),
        "material.invalid" => format!("文件无效：{english}"),
        "terms.not_accepted" => "请阅读并同意服务协议".into(),
        "bank.missing" => "请填写银行账户信息".into(),
        "random_code.wrong" => "随机码错误，请输入新显示的随机码".into(),
        _ => english.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// The literal keys translated with `t` in the web front's sources.
    fn literal_keys(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                literal_keys(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let mut rest = text.as_str();
                while let Some(at) = rest.find(".t(\"") {
                    let tail = &rest[at + 4..];
                    let end = tail.find('"').unwrap();
                    out.insert(tail[..end].to_string());
                    rest = &tail[end..];
                }
            }
        }
    }

    /// Every key the pages translate: the literals, and the fixed sets translated by value
    /// (flow titles, step names, order states, methods, member roles).
    fn used_keys() -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        literal_keys(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web"), &mut keys);
        let by_value = crate::web::pages::FLOWS
            .iter()
            .map(|(_, title)| *title)
            .chain(crate::ra::flow::Step::ALL.iter().map(|s| s.name()))
            .chain(crate::web::pages::order::STATES)
            .chain(crate::web::pages::steps::METHODS)
            .chain(crate::web::pages::seals::ROLES)
            .chain(crate::web::pages::services::STATUSES);
        keys.extend(by_value.map(str::to_string));
        keys
    }

    #[test]
    fn every_text_the_pages_use_has_chinese_and_english_and_none_is_unused() {
        let used = used_keys();
        assert!(used.len() > 100, "the scan found the pages' texts: {}", used.len());
        let missing: Vec<_> = used.iter().filter(|k| zh(k).is_none_or(str::is_empty) || k.is_empty()).collect();
        assert!(missing.is_empty(), "texts without a Chinese entry: {missing:?}");
        let unused: Vec<_> = TEXTS.iter().map(|(en, _)| *en).filter(|k| !used.contains(*k)).collect();
        assert!(unused.is_empty(), "Chinese entries no page uses: {unused:?}");
        let mut seen = BTreeSet::new();
        let twice: Vec<_> = TEXTS.iter().filter(|(en, _)| !seen.insert(*en)).collect();
        assert!(twice.is_empty(), "keys listed twice: {twice:?}");
        assert_eq!(Lang::Zh.t("Customer service"), "客服电话");
        assert_eq!(Lang::En.t("Customer service"), "Customer service");
    }

    /// No page writes markup by hand: every value goes through maud's escaping.
    #[test]
    fn no_page_builds_html_by_hand() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("i18n.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for banned in ["PreEscaped", "fn esc(", "\"<"] {
                    assert!(!text.contains(banned), "{} contains {banned:?}", path.display());
                }
            }
        }
    }
}
