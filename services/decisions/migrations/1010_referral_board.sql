-- Referrals as monitoring watches them: unanswered past their acknowledgement day, the
-- monitor raises `ReferralOverdue` once.
CREATE TABLE referral_board (
    referral_id     TEXT    PRIMARY KEY,
    case_id         UUID    NOT NULL,
    department      TEXT    NOT NULL,
    acknowledge_by  DATE,
    answered        BOOLEAN NOT NULL DEFAULT FALSE,
    overdue_raised  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX referral_board_waiting ON referral_board (acknowledge_by)
    WHERE NOT answered AND NOT overdue_raised;
